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
from collections.abc import Sequence
from dataclasses import dataclass

from extra_cot.compress.blind import blind_scorers  # formula- and question-blind peers (TokenSkip-style)
from extra_cot.compress.scorer_base import Scorer, ScorerOptions, aggregate  # noqa: F401 (the interface, re-exported)
from extra_cot.compress.segment import Unit

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

    def score_batch(self, items: Sequence[tuple[str, str, Sequence[Unit]]]) -> list[list[float]]:
        return [self.score(q, c, u) for q, c, u in items]


def _make_heuristic(options: ScorerOptions) -> Scorer:
    return HeuristicScorer()


def _make_lm(options: ScorerOptions) -> Scorer:
    from extra_cot.compress.lm_scorer import LMScorer

    return LMScorer.load(options)


def _make_classifier(options: ScorerOptions) -> Scorer:
    from extra_cot.compress.classifier_scorer import ClassifierScorer

    return ClassifierScorer.load(options)


#: name -> factory; model-backed scorers import torch/transformers only when chosen.
SCORERS = {"lm": _make_lm, "classifier": _make_classifier, "heuristic": _make_heuristic, **blind_scorers(HeuristicScorer)}


def make_scorer(options: ScorerOptions) -> Scorer:
    """Build the scorer named in ``options`` (names are validated by ``ScorerOptions``)."""
    return SCORERS[options.name](options)
