"""verl reward-loop manager ``chrpo``: decodes keeping the ratio token, counts think tokens.

Think tokens follow ``extra_cot.think.think_span`` (reasoning outside the block counts;
docs/method.md, "Think accounting"). ``reward_extra_info`` always carries ``truncated`` (1.0 when
the response was cut off inside its think block) and ``think_tokens``, so verl's validation metrics
and rollout dumps report the truncated share; the training step's share is in the call log's
estimator record and an INFO line per step (``extra_cot.rl.calllog.step_metrics``).

verl's ``naive`` manager decodes with ``skip_special_tokens=True`` (the ratio token vanishes)
and passes no token counts (docs/hosts.md), so CHRPO needs its own manager. Options come from
``reward.reward_kwargs.chrpo`` (fields of ``extra_cot.rl.reward.ChrpoRewardConfig``); with
``reward.custom_reward_function.path`` set, that function is called instead, with the same
decoded text and ``extra_info["think_tokens"]``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from verl import DataProto

from extra_cot.hostcheck import require_signature, require_version

_WHAT = "extra-cot's reward manager chrpo (subclasses verl.experimental's RewardManagerBase)"
# verl marks the reward loop experimental: check the release before importing/subclassing it.
require_version("verl", None, _WHAT)

from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER

from extra_cot.rl import calllog
from extra_cot.rl.registration import replace_stale
from extra_cot.rl.reward import ChrpoRewardConfig
from extra_cot.rl.reward_fn import compute_score as chrpo_compute_score
from extra_cot.think import count_tokens, think_span
from extra_cot.tokens import CONTROL_TOKENS

#: What ChrpoRewardManager relies on in verl 0.9.1's RewardManagerBase (super().__init__, run_single).
BASE_PARAMS = {"__init__": ("self", "config", "tokenizer", "compute_score"), "run_single": ("self", "data")}
for _name, _params in BASE_PARAMS.items():
    require_signature(getattr(RewardManagerBase, _name), _params, _WHAT)


#: The name under which the manager is registered (``reward.reward_manager.name``).
MANAGER_NAME = "chrpo"


def reward_options(config: Any) -> dict:
    """``reward.reward_kwargs.chrpo`` as a plain dict (validated)."""
    reward_cfg = config.get("reward") or {}
    options = dict((reward_cfg.get("reward_kwargs") or {}).get("chrpo") or {})
    ChrpoRewardConfig.from_mapping(options)  # fail at start-up, not at the first batch
    return options


def decode_keeping_control(tokenizer: Any, ids: Any) -> str:
    """Decode ``ids`` dropping special tokens except the control tokens (EOS/pad go)."""
    keep = _control_ids(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    kept = [int(i) for i in ids if int(i) in keep or int(i) not in special]
    return tokenizer.decode(kept, skip_special_tokens=False)


class MissingControlTokensError(ValueError):
    """The policy's tokenizer has no id for some control token: the ratio choice cannot be read."""


def _control_ids(tokenizer: Any) -> frozenset:
    """Ids of the six control tokens; raises :class:`MissingControlTokensError` if any is missing."""
    cached = getattr(tokenizer, "_extra_cot_control_ids", None)
    if cached is None:
        unk = getattr(tokenizer, "unk_token_id", None)
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in CONTROL_TOKENS}
        missing = [token for token, i in ids.items() if i is None or i == unk]
        if missing:
            raise MissingControlTokensError(
                f"reward manager {MANAGER_NAME!r}: the policy's tokenizer "
                f"({getattr(tokenizer, 'name_or_path', '?')}) has no token for {missing}, so the ratio "
                "choice cannot be read and every response would score as invalid. Fix: train from a "
                "Stage-2 model (actor_rollout_ref.model.path), or add the tokens first with "
                "`extra-cot prepare-model --src MODEL --out DIR`"
            )
        cached = frozenset(ids.values())
        tokenizer._extra_cot_control_ids = cached
    return cached


def _plain_scalar(value: Any) -> Any:
    """A numpy scalar/0-d array from verl's non-tensor batch as a plain Python value (None stays)."""
    return value.item() if hasattr(value, "item") else value


@register(MANAGER_NAME)
@replace_stale(REWARD_MANAGER, MANAGER_NAME)
class ChrpoRewardManager(RewardManagerBase):
    """Scores one response with the CHRPO hierarchical reward (see ``extra_cot.rl.reward``)."""

    def __init__(
        self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None
    ):
        super().__init__(config, tokenizer, compute_score)
        _control_ids(tokenizer)  # fail at start-up, not at the first batch
        custom = (config.get("reward") or {}).get("custom_reward_function") or {}
        if custom.get("path"):
            self.compute_score = compute_score
        else:
            self.compute_score = functools.partial(chrpo_compute_score, **reward_options(config))
        self.is_async = inspect.iscoroutinefunction(self.compute_score)

    def _decode(self, data_item: Any) -> tuple[str, int, bool]:
        """(text, think tokens, truncated) of one response."""
        response_ids = data_item.batch["responses"]
        length = int(data_item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        text = decode_keeping_control(self.tokenizer, response_ids[:length].tolist())
        span = think_span(text)
        return text, count_tokens(span.counted, self.tokenizer), span.truncated

    async def run_single(self, data: DataProto) -> dict:
        data_item = data[-1:][0]  # multi-sequence outputs: score the last one, as verl's managers do
        text, think_tokens, truncated = await self.loop.run_in_executor(None, lambda: self._decode(data_item))
        extra_info = dict(data_item.non_tensor_batch.get("extra_info", None) or {})
        extra_info["think_tokens"] = think_tokens
        kwargs = {
            "data_source": data_item.non_tensor_batch.get("data_source", ""),
            "solution_str": text,
            "ground_truth": data_item.non_tensor_batch["reward_model"]["ground_truth"],
            "extra_info": extra_info,
        }
        if self.is_async:
            result = await self.compute_score(**kwargs)
        else:
            result = await self.loop.run_in_executor(None, lambda: self.compute_score(**kwargs))
        info = dict(result) if isinstance(result, dict) else {"score": float(result)}
        info.setdefault("truncated", float(truncated))  # a custom function may not report it
        info.setdefault("think_tokens", float(think_tokens))
        # no-op unless EXTRA_COT_CALL_LOG; index and gt_ratio let a report group rollouts by question;
        # uid (verl's rollout group) and step let the estimator summarise its step (calllog.step_metrics)
        step = data_item.non_tensor_batch.get("global_steps", None)
        calllog.record("reward", split=extra_info.get("split"), index=extra_info.get("index"),
                       gt_ratio=extra_info.get("gt_ratio"), uid=_plain_scalar(data_item.non_tensor_batch.get("uid")),
                       step=None if step is None else int(step), **info)
        return {"reward_score": float(info["score"]), "reward_extra_info": info}
