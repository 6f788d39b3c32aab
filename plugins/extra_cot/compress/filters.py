"""Degeneracy filters for compressed reasoning (docs/method.md: repetition, most-common-token
share, long runs; stricter at low γ). Pure functions on units (words, and formulas as one word each).

Thresholds are our reconstruction [R] (the authors' values are not published); they are
options, with the low-ratio set used at γ ≤ ``low_ratio``. Measured on the first 500 GSM8K train
rows (``heuristic`` scorer, SmolLM2 tokenizer; ``extra-cot build-sft`` prints the counts) they drop
4, 10, 1 and 0 rows at 0.2, 0.4, 0.6 and 0.8.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from extra_cot.compress.decisive import dead_ends
from extra_cot.compress.segment import segment


@dataclass(frozen=True)
class FilterOptions:
    """Limits on a compression's words; ``*_low`` apply at ratios ≤ ``low_ratio``."""

    low_ratio: float = 0.4
    max_top_share: float = 0.4
    max_top_share_low: float = 0.3
    max_run: int = 3
    max_run_low: int = 2
    min_distinct_trigrams: float = 0.6
    min_distinct_trigrams_low: float = 0.8
    #: Shorter outputs are judged only by runs: shares over 5 words are noise.
    min_words_for_shares: int = 8

    def __post_init__(self) -> None:
        for name in ("max_top_share", "max_top_share_low", "min_distinct_trigrams", "min_distinct_trigrams_low"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"FilterOptions.{name} must be in (0, 1], got {getattr(self, name)}")
        if self.max_run < 1 or self.max_run_low < 1:
            raise ValueError("FilterOptions.max_run and max_run_low must be >= 1")


def _longest_run(words: list[str]) -> int:
    best = run = 0
    for k, w in enumerate(words):
        run = run + 1 if k and w == words[k - 1] else 1
        best = max(best, run)
    return best


def degeneracy_reason(text: str, ratio: float, options: FilterOptions = FilterOptions()) -> str | None:
    """Why ``text`` (a compression at ``ratio``) is degenerate, or ``None`` when it is fine."""
    # A formula counts as one word: "=" inside three equations is not repetition.
    words = [u.text.lower() for u in segment(text)]
    if not words:
        return "empty"
    low = ratio <= options.low_ratio
    max_run = options.max_run_low if low else options.max_run
    if _longest_run(words) > max_run:
        return f"run>{max_run}"
    if len(words) < options.min_words_for_shares:
        return None
    top_share = Counter(words).most_common(1)[0][1] / len(words)
    limit = options.max_top_share_low if low else options.max_top_share
    if top_share > limit:
        return f"top_word_share>{limit}"
    trigrams = list(zip(words, words[1:], words[2:]))
    distinct = len(set(trigrams)) / len(trigrams)
    floor = options.min_distinct_trigrams_low if low else options.min_distinct_trigrams
    if distinct < floor:
        return f"distinct_trigrams<{floor}"
    return None


def fidelity_reason(text: str) -> str | None:
    """``wrong_equation(..)`` when ``text`` (a compression) holds an equation whose arithmetic is
    wrong and that no later equation of ``text`` corrects (issue 36: a dead end must be kept or
    dropped with its correction); ``None`` when every wrong equation is followed by its fix."""
    units = segment(text)
    lone = [i for i, fix in dead_ends(units).items() if fix is None]
    return f"wrong_equation({units[lone[0]].text[:80]!r})" if lone else None
