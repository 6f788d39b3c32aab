"""Extra-CoT: extreme-ratio chain-of-thought compression as plugins for stock hosts.

Importing this package imports no host (LLaMA-Factory, verl, vLLM), no torch and no
transformers: the shared pieces here are pure Python. Host adapters live in ``extra_cot.sft``
(LLaMA-Factory), ``extra_cot.rl`` (verl) and ``extra_cot.eval`` (vLLM server client).
"""

from extra_cot.prompt import INSTRUCTION, SYSTEM_PROMPT, build_messages, build_response, build_user_text
from extra_cot.think import count_think_tokens, split_think, think_span
from extra_cot.tokens import (
    CONTROL_TOKENS,
    FIXED_RATIOS,
    POLICY_TOKEN,
    ControlChoice,
    parse_control,
    parse_leading_control,
    ratio_to_token,
    token_to_ratio,
)

__version__ = "0.1.0"

__all__ = [
    "CONTROL_TOKENS",
    "FIXED_RATIOS",
    "INSTRUCTION",
    "POLICY_TOKEN",
    "SYSTEM_PROMPT",
    "ControlChoice",
    "build_messages",
    "build_response",
    "build_user_text",
    "count_think_tokens",
    "parse_control",
    "parse_leading_control",
    "ratio_to_token",
    "split_think",
    "think_span",
    "token_to_ratio",
]
