"""Formula-blind, question-blind Stage 1 scorers: the TokenSkip-style peer of the study (issue 38).

TokenSkip, the paper's main comparison, prunes a CoT by an importance that knows neither which
tokens form a formula nor what the question asks (LLMLingua-2's token classifier, trained on
generic text). These scorers are the project's own scorers with that knowledge taken away, so a
study row trained on their compressions differs from the method in the scoring alone:

==================  ===========================================================================
name                score of a unit
==================  ===========================================================================
``heuristic-blind`` the ``heuristic`` scorer shown no question and no formula flag, word by
                    word: no question-word bonus, no formula bonus; a unit scores the mean of its
                    words, so a formula's numbers count as numbers and its operators as
                    punctuation
``lm-blind``        LLMLingua's plain surprisal ``z(-log p(x_i | x_<i))`` with the ``lm`` scorer's
                    model and framing, without the question: no question contrast
==================  ===========================================================================

The pipeline's own bonuses are options (``extra-cot compress --formula-bonus 0 --decisive-bonus 0``,
:data:`BLIND_BONUSES`); segmentation, the selection's mandatory answer statement and the integrity
gates stay as they are, so a formula is still kept or dropped whole. That makes this peer stronger
than the paper's TokenSkip, whose pruning can cut a formula.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from extra_cot.compress.lm_scorer import PREFIX_0, LMScorer, _standardize
from extra_cot.compress.scorer_base import Scorer, ScorerOptions, aggregate
from extra_cot.compress.segment import Unit

#: The blind twin of each scorer the study uses (``--scorer``).
BLIND_OF = {"lm": "lm-blind", "heuristic": "heuristic-blind"}
#: ``extra-cot compress`` bonuses of a blind compression: no formula or decisive-equation bonus.
BLIND_BONUSES = {"formula_bonus": 0.0, "decisive_bonus": 0.0}
_PIECE = re.compile(r"\S+")


@dataclass(frozen=True)
class BlindHeuristicScorer:
    """:class:`extra_cot.compress.scorers.HeuristicScorer` without its formula and question terms, at the
    level of words: every whitespace-separated piece is scored as a word (no question, no formula flag),
    and a unit's score is the mean of its pieces' (as the model scorers average a unit's tokens), so in
    ``23 + 7 = 30`` the operators weigh as the punctuation they look like to a generic compressor."""

    heuristic: Scorer  # the ``heuristic`` scorer (given: this module sits below ``scorers``)
    name: str = "heuristic-blind"

    def score(self, question: str, cot: str, units: Sequence[Unit]) -> list[float]:
        pieces = [[Unit(m.group(), u.start + m.start(), u.start + m.end(), False) for m in _PIECE.finditer(u.text)]
                  or [dataclasses.replace(u, formula=False)] for u in units]
        flat = self.heuristic.score("", cot, [p for unit in pieces for p in unit])
        out, at = [], 0
        for unit in pieces:
            out.append(sum(flat[at:at + len(unit)]) / len(unit))
            at += len(unit)
        return out

    def score_batch(self, items: Sequence[tuple[str, str, Sequence[Unit]]]) -> list[list[float]]:
        return [self.score(q, c, u) for q, c, u in items]


@dataclass
class BlindLMScorer(LMScorer):
    """The ``lm`` scorer's surprisal without the question (one forward input per window, not two)."""

    name: str = "lm-blind"

    def _windows(self, cot: str) -> tuple[list, list[tuple[list[int], int]]]:
        enc = self.tokenizer(cot, add_special_tokens=False, return_offsets_mapping=True)
        ids, prefix = enc["input_ids"], self._ids(PREFIX_0)
        window = self.options.max_length - len(prefix)
        return enc["offset_mapping"], [(prefix + ids[s:s + window], len(prefix)) for s in range(0, len(ids), window)]

    def score_batch(self, items: Sequence[tuple[str, str, Sequence[Unit]]]) -> list[list[float]]:
        import torch

        plans = [self._windows(cot) for _, cot, _ in items]
        values = self._forward_surprisals([seq for _, seqs in plans for seq in seqs])
        scores, at = [], 0
        for (_, _, units), (offsets, seqs) in zip(items, plans, strict=True):
            mine, at = values[at:at + len(seqs)], at + len(seqs)
            if not mine:
                scores.append([0.0] * len(units))
                continue
            scores.append(aggregate(offsets, _standardize(torch.cat(mine)).tolist(), units))
        return scores


def blind_scorers(heuristic: Callable[[], Scorer]) -> dict[str, Callable[[ScorerOptions], Scorer]]:
    """name -> factory of the blind scorers, joined into :data:`extra_cot.compress.scorers.SCORERS`, which
    passes its ``HeuristicScorer`` (so this module does not import ``scorers``: no cycle)."""
    return {"heuristic-blind": lambda options: BlindHeuristicScorer(heuristic()),
            "lm-blind": BlindLMScorer.load}
