"""Think-span accounting: the ``<think>…</think>`` text and its token count.

Tokens = non-special model tokens inside a *closed* think block (docs/method.md, "Evaluation");
an unclosed block counts as no think (0 tokens), as in the paper's think-only accounting.
"""

from __future__ import annotations

from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def split_think(response: str) -> tuple[str | None, str]:
    """Return ``(think_text, answer_text)``.

    ``think_text`` is the stripped text between the first ``<think>`` and the following
    ``</think>``, or ``None`` when the block is missing or unclosed. ``answer_text`` is what
    follows ``</think>`` (stripped), or the whole response when there is no closed block.
    """
    start = response.find(THINK_OPEN)
    if start < 0:
        return None, response.strip()
    end = response.find(THINK_CLOSE, start + len(THINK_OPEN))
    if end < 0:
        return None, response.strip()
    think = response[start + len(THINK_OPEN) : end]
    return think.strip(), response[end + len(THINK_CLOSE) :].strip()


def count_tokens(text: str, tokenizer: Any) -> int:
    """Count ``text``'s tokens with a HF tokenizer, excluding special tokens."""
    if not text:
        return 0
    ids = tokenizer.encode(text, add_special_tokens=False)
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    return sum(1 for i in ids if i not in special)


def count_think_tokens(response: str, tokenizer: Any) -> int:
    """Non-special tokens inside the closed think block of ``response`` (0 if none)."""
    think, _ = split_think(response)
    return 0 if think is None else count_tokens(think, tokenizer)
