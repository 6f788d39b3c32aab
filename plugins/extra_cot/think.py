"""Think-span accounting: which text of a response counts as reasoning, and its token count.

One rule for the reward, ``compute_score``, eval and the study
(docs/method.md, "Think accounting"): every token the model wrote counts, except the control
token, the think tags, white space between parts, and one short final-answer line. Reasoning before ``<think>``, after
``</think>``, in a second block or cut off inside an unclosed block is counted, so moving it out of
the block buys nothing. The layout the reward accepts (``ThinkSpan.well_formed``) is exactly one
``<think>`` followed by exactly one ``</think>``; anything else is tier 0 in RL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from extra_cot.tokens import CONTROL_RE

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

#: The answer section's last line is free when it holds a ``\\boxed{}`` and has at most this many
#: characters. 80 fits the project's own final lines ("The final answer is $\\boxed{72}$." 33,
#: the demo's longest 63) and a MATH-style answer; longer lines count in full.
#: It bounds what a policy could hide there (docs/method.md, "Think accounting").
FINAL_LINE_MAX_CHARS = 80

#: ``ThinkSpan.problem`` values: why a response is not in the accepted layout.
NO_THINK = "no_think"  # neither tag
UNCLOSED = "unclosed"  # ``<think>`` never closed: cut off (truncated) inside the block
EXTRA_TAG = "extra_tag"  # a second ``<think>`` or ``</think>`` anywhere (second block, nesting, tags in a box)
CLOSE_FIRST = "close_before_open"  # a ``</think>`` before any ``<think>``

_TAG_RE = re.compile(r"</?think>")
_BOX_MARKERS = ("\\boxed", "\\fbox")


@dataclass(frozen=True)
class ThinkSpan:
    """The accounting of one response (see :func:`think_span`)."""

    #: text of the first think block (stripped), ``None`` when the first ``<think>`` is not closed.
    block: str | None
    #: the answer section: text after the first ``</think>`` (stripped); the whole response if none.
    answer: str
    #: the text counted as reasoning for length (parts joined by newlines; tags, control tokens out).
    counted: str
    #: ``None`` for the accepted layout, else one of the module's problem names.
    problem: str | None

    @property
    def well_formed(self) -> bool:
        """Exactly one ``<think>``, then exactly one ``</think>``: the layout the reward accepts."""
        return self.problem is None

    @property
    def closed(self) -> bool:
        """The first think block is closed (eval's ``closed_think``)."""
        return self.block is not None

    @property
    def truncated(self) -> bool:
        """Cut off inside the think block: ``<think>`` opened and never closed."""
        return self.problem == UNCLOSED


def _clean(text: str) -> str:
    """``text`` without control tokens and think tags, stripped."""
    return _TAG_RE.sub("\n", CONTROL_RE.sub("", text)).strip()


def _join(*parts: str) -> str:
    return "\n".join(p for p in (_clean(part) for part in parts) if p)


def answer_overflow(answer: str) -> str:
    """The part of an answer section that counts: all of it but a short final line holding a box.

    The free line is the last non-empty line when it contains ``\\boxed``/``\\fbox`` and has at most
    :data:`FINAL_LINE_MAX_CHARS` characters; every other line, and a longer or box-less last
    line, counts.
    """
    lines = answer.strip().split("\n")
    last = lines[-1].strip()
    if any(marker in last for marker in _BOX_MARKERS) and len(last) <= FINAL_LINE_MAX_CHARS:
        return "\n".join(lines[:-1])
    return answer


def think_span(response: str) -> ThinkSpan:
    """Account for the reasoning in ``response`` (decoded with control tokens kept).

    * accepted layout (``[token] <think> B </think> A``): counted = text before ``<think>`` + B +
      :func:`answer_overflow` of A;
    * unclosed ``<think>`` (``problem="unclosed"``, truncated): counted = everything, tags out;
    * neither tag (``no_think``): counted = :func:`answer_overflow` of the whole response;
    * any other tag pattern (``extra_tag``, ``close_before_open``): counted = everything, tags out.
    """
    n_open, n_close = response.count(THINK_OPEN), response.count(THINK_CLOSE)
    start = response.find(THINK_OPEN)
    end = response.find(THINK_CLOSE, start + len(THINK_OPEN)) if start >= 0 else -1
    block = response[start + len(THINK_OPEN) : end].strip() if end >= 0 else None
    answer = response[end + len(THINK_CLOSE) :].strip() if end >= 0 else response.strip()
    if n_open == 0 and n_close == 0:
        return ThinkSpan(None, answer, _join(answer_overflow(response)), NO_THINK)
    if n_open > 1 or n_close > 1:
        problem = EXTRA_TAG
    elif start < 0 or 0 <= response.find(THINK_CLOSE) < start:
        problem = CLOSE_FIRST
    elif end < 0:
        problem = UNCLOSED
    else:
        counted = _join(response[:start], block, answer_overflow(answer))
        return ThinkSpan(block, answer, counted, None)
    return ThinkSpan(block, answer, _join(response), problem)


def split_think(response: str) -> tuple[str | None, str]:
    """Return ``(think_text, answer_text)`` of the *first* think block, for parsing traces.

    ``think_text`` is the stripped text between the first ``<think>`` and the following
    ``</think>``, or ``None`` when the block is missing or unclosed. ``answer_text`` is what
    follows ``</think>`` (stripped), or the whole response when there is no closed block. This is
    a parser, not the length rule: count reasoning with :func:`think_span` /
    :func:`count_think_tokens`.
    """
    span = think_span(response)
    return span.block, span.answer


def count_tokens(text: str, tokenizer: Any) -> int:
    """Count ``text``'s tokens with a HF tokenizer, excluding special tokens."""
    if not text:
        return 0
    ids = tokenizer.encode(text, add_special_tokens=False)
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    return sum(1 for i in ids if i not in special)


def count_think_tokens(response: str, tokenizer: Any) -> int:
    """Non-special tokens of the reasoning :func:`think_span` counts in ``response``."""
    return count_tokens(think_span(response).counted, tokenizer)
