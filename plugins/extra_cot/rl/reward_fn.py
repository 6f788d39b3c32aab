"""``compute_score`` for verl's ``reward.custom_reward_function`` (file path or ``pkg://`` form).

    reward.reward_manager.name=chrpo
    reward.custom_reward_function.path=pkg://extra_cot.rl.reward_fn
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.max_bonus=0.8

Our ``chrpo`` reward manager already scores with this function; name it explicitly only to
change options through ``reward_kwargs`` or to start from ``reward_fns/chrpo_reward.py``. The
manager keeps the ratio token in ``solution_str`` and puts ``think_tokens`` into
``extra_info``. verl's stock managers do neither (they decode with
``skip_special_tokens=True``, so every response would score "invalid"): with them, pass
``tokenizer=<model dir>`` in ``reward_kwargs`` and expect invalid tiers (logged once). Without
``extra_info["think_tokens"]`` the count is ``extra_cot.think.count_think_tokens`` with that
tokenizer, the same rule the manager uses (docs/method.md, "Think accounting").
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from extra_cot.rl.reward import ChrpoRewardConfig, score_response

logger = logging.getLogger(__name__)

#: Keyword arguments verl's managers may add that are not reward options.
_HOST_KWARGS = ("reward_router_address", "reward_model_tokenizer", "tokenizer")


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    from extra_cot import hub

    return hub.from_pretrained(AutoTokenizer, path)


@functools.lru_cache(maxsize=16)
def _config(items: tuple) -> ChrpoRewardConfig:
    return ChrpoRewardConfig.from_mapping(dict(items))


def _think_tokens(solution_str: str, info: dict, tokenizer_path: str | None) -> int:
    if info.get("think_tokens") is not None:
        return int(info["think_tokens"])
    if tokenizer_path is None:
        raise ValueError(
            "chrpo compute_score needs think token counts: use reward.reward_manager.name=chrpo, "
            "or pass reward_kwargs.tokenizer=<model dir>"
        )
    from extra_cot.think import count_think_tokens

    return count_think_tokens(solution_str, _tokenizer(str(tokenizer_path)))


@functools.lru_cache(maxsize=1)
def _warn_stripped() -> None:
    logger.warning(
        "chrpo compute_score got a response without a leading ratio token; verl's stock reward "
        "managers strip special tokens: set reward.reward_manager.name=chrpo"
    )


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's reward-function signature; returns ``{"score": ..., <components>}``."""
    del data_source  # one reward for every math source
    info = dict(extra_info or {})
    tokenizer_path = kwargs.get("tokenizer")
    options = {k: v for k, v in kwargs.items() if k not in _HOST_KWARGS}
    try:
        config = _config(tuple(sorted(options.items())))
    except TypeError:  # an unhashable option value: build uncached (from_mapping names bad keys)
        config = ChrpoRewardConfig.from_mapping(options)
    result = score_response(
        solution_str,
        ground_truth,
        think_tokens=_think_tokens(solution_str, info, tokenizer_path),
        extra_info=info,
        config=config,
    )
    if not result.valid and not solution_str.lstrip().startswith("<COMP_"):
        _warn_stripped()
    return result.as_dict()
