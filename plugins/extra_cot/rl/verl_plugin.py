"""verl plugin (entry point ``verl.plugins: extra_cot``): registers CHRPO at import.

``import verl`` loads every ``verl.plugins`` entry point in every verl process (driver, the
trainer's Ray actor, reward and actor workers), so registration happens at import, idempotently.
verl logs plugin load errors at DEBUG only, so success is logged here at INFO.

Registered:

* advantage estimator ``chrpo`` (``algorithm.adv_estimator=chrpo``; options ``algorithm.chrpo``),
  a verl adapter around the pure ``extra_cot.rl.advantage.chrpo_advantage``;
* reward-loop manager ``chrpo`` (``reward.reward_manager.name=chrpo``; options
  ``reward.reward_kwargs.chrpo``), ``extra_cot.rl.reward_manager.ChrpoRewardManager``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from extra_cot.hostcheck import UntestedHostError, require_version

logger = logging.getLogger(__name__)
# verl sets the root logger to WARNING; our success line must still show (EXTRA_COT_LOG_LEVEL overrides).
logger.setLevel(os.getenv("EXTRA_COT_LOG_LEVEL", "INFO"))

try:  # before registering anything: an untested verl release is refused, not patched anyway
    require_version("verl", None, "extra-cot's verl plugin (estimator chrpo, reward manager chrpo)")
    from extra_cot.rl.reward_manager import MANAGER_NAME, ChrpoRewardManager
except UntestedHostError as _err:
    # verl logs a failing plugin at DEBUG only; say it at ERROR so the refusal is seen, then raise.
    logger.error("extra_cot verl plugin NOT loaded: %s", _err)
    raise

from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

from extra_cot.rl import calllog
from extra_cot.rl import lora as _lora  # noqa: F401  (LoRA RL: trainable control-token rows, patches at engine load)
from extra_cot.rl.advantage import ChrpoAdvantageConfig, chrpo_advantage
from extra_cot.rl.registration import replace_stale

#: ``algorithm.adv_estimator`` value of CHRPO.
ESTIMATOR_NAME = "chrpo"

__all__ = [
    "ESTIMATOR_NAME",
    "MANAGER_NAME",
    "ChrpoRewardManager",
    "compute_chrpo_advantage",
    "estimator_options",
]


def _plain(mapping: Any) -> dict:
    if mapping is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(mapping, DictConfig):
            return dict(OmegaConf.to_container(mapping, resolve=True))
    except ImportError:  # omegaconf ships with verl; stay importable without it
        pass
    return dict(mapping)


def estimator_options(config: Any) -> ChrpoAdvantageConfig:
    """``algorithm.chrpo`` -> options; ``norm_by_std`` defaults to ``algorithm.norm_adv_by_std_in_grpo``."""
    if config is None:
        return ChrpoAdvantageConfig()
    if config.get("use_kl_in_reward", False):
        raise ValueError(
            "algorithm.use_kl_in_reward=true breaks the chrpo score contract (tier + fraction per "
            "response): set algorithm.use_kl_in_reward=false and use actor_rollout_ref.actor.use_kl_loss=true"
        )
    defaults = {"norm_by_std": bool(config.get("norm_adv_by_std_in_grpo", True))}
    return ChrpoAdvantageConfig.from_mapping(_plain(config.get("chrpo")), **defaults)


@register_adv_est(ESTIMATOR_NAME)
@replace_stale(ADV_ESTIMATOR_REGISTRY, ESTIMATOR_NAME)
def compute_chrpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator signature; see ``extra_cot.rl.advantage`` for the maths and the contract."""
    del kwargs  # e.g. reward_baselines: CHRPO's baseline is the group itself
    if index is None:
        logger.warning("chrpo estimator got no uid groups; treating the batch as one group")
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        advantages = chrpo_advantage(scores, response_mask, index, estimator_options(config))
    if calllog.enabled():  # EXTRA_COT_CALL_LOG: proof of the call and what it computed
        step = calllog.step_metrics(index)  # this step's truncated share (verl's step log has no hook)
        calllog.log_step(step)
        calllog.record(
            "estimator",
            rows=int(scores.shape[0]),
            groups=len(set(map(str, index))) if index is not None else 1,
            scores=[round(float(s), 6) for s in scores],
            nonzero_rows=int((advantages != 0).any(dim=-1).sum()),
            abs_max=float(advantages.abs().max()) if advantages.numel() else 0.0,
            **step,
        )
    return advantages, advantages


logger.info(
    "extra_cot verl plugin active (pid %d): advantage estimator %r, reward manager %r (%s)",
    os.getpid(),
    ESTIMATOR_NAME,
    MANAGER_NAME,
    ChrpoRewardManager.__name__,
)
