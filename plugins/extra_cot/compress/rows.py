"""The one per-row step of ``extra-cot compress``, shared by the single-process loop and the Ray
Data actors (``extra_cot.compress.ray_compress``): an input row in, an outcome out.

An outcome is ``(kind, record)``: ``kind`` is ``"out"`` (a row of OUT), ``"skip"`` (a row of
OUT.skipped.jsonl) or ``"error"`` (``record["error"]`` is the message of a bad input row, which
the writer raises in input order so both paths stop after the same rows).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from extra_cot.compress.jsonl import row_key
from extra_cot.compress.pipeline import (
    READERS,
    CompressOptions,
    compress_source,
    cot_token_cap,
    longest_token_chars,
    too_long,
)
from extra_cot.compress.scorers import ScorerOptions
from extra_cot.compress.segment import segment


def input_key(row: dict) -> str:
    """Resume key of an input row (the same for every --input-format)."""
    return row_key(str(row.get("question")), str(row.get("response", row.get("answer"))))


@dataclass(frozen=True)
class RowJob:
    """Everything a worker needs to compress rows (picklable: shipped to Ray actors)."""

    compress: CompressOptions
    scorer: ScorerOptions
    tokenizer: str | None
    input_format: str
    strip_annotations: bool
    input_name: str


class RowCompressor:
    """Loads the tokenizer and scorer once, then compresses one input row per call."""

    def __init__(self, job: RowJob) -> None:
        from extra_cot.compress.models import load_tokenizer, make_counter
        from extra_cot.compress.scorers import make_scorer

        self.job = job
        self.tokenizer = load_tokenizer(job.tokenizer)
        self.count = make_counter(self.tokenizer)
        self.scorer = make_scorer(resolve_device(job.scorer))
        self.reader = READERS[job.input_format]
        self.max_tokens, self.token_chars = cot_token_cap(job.compress, self.tokenizer), longest_token_chars(self.tokenizer)

    def __call__(self, n: int, row: dict) -> tuple[str, dict]:
        return self.batch([(n, row)])[0]

    def batch(self, rows: Sequence[tuple[int, dict]]) -> list[tuple[str, dict]]:
        """Outcomes of ``(line, row)`` pairs, in order; the CoTs are scored together (``score_batch``)."""
        outcomes: list = []
        sources = []  # (position in outcomes, line, key, source, units)
        for n, row in rows:
            key = input_key(row)
            try:
                src, reason = self.reader(row, f"{self.job.input_name}:{n}", self.job.strip_annotations)
            except ValueError as exc:
                outcomes.append(("error", {"key": key, "line": n, "error": str(exc)}))
                continue
            if src is None:
                outcomes.append(("skip", {"key": key, "line": n, "reason": reason}))
                continue
            length = too_long(src.cot, self.count, self.max_tokens, self.token_chars)
            if length is not None:  # before scoring: a 10 MB line must not reach the scorer (issue 37)
                outcomes.append(("skip", {"key": key, "line": n, "reason": "too_long", **length}))
                continue
            sources.append((len(outcomes), n, key, src, segment(src.cot)))
            outcomes.append(None)
        raw = self.scorer.score_batch([(src.question, src.cot, units) for *_, src, units in sources])
        for (at, n, key, src, units), scores in zip(sources, raw, strict=True):
            outcomes[at] = ("out", {"key": key, "line": n, **compress_source(
                src, self.scorer, self.tokenizer, self.count, self.job.compress, scored=(units, scores))})
        return outcomes


def batched(compressor: RowCompressor, todo: Sequence[tuple[int, dict]]) -> Iterator[tuple[str, dict]]:
    """Outcomes of ``todo`` in order, scored ``job.scorer.batch_size`` rows at a time (the single-process path)."""
    size = compressor.job.scorer.batch_size
    for start in range(0, len(todo), size):
        yield from compressor.batch(todo[start:start + size])


def resolve_device(options: ScorerOptions) -> ScorerOptions:
    """``device="auto"``: ``cuda`` when this process sees a GPU, else ``cpu`` (decided in the worker,
    where Ray has set the visible GPUs)."""
    if options.device != "auto":
        return options
    device = "cpu"
    if options.name != "heuristic":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return dataclasses.replace(options, device=device)


def outcome_stats(kind: str, record: dict) -> Counter:
    """The stats-line counts of one outcome (``written``, ``skipped:<reason>``, ``dropped@r:<why>``)."""
    if kind == "skip":
        return Counter({f"skipped:{record['reason']}": 1})
    stats = Counter(written=1)
    for ratio, why in record["dropped"].items():
        stats[f"dropped@{ratio}:{why.split('(')[0]}"] += 1
    return stats


def integrity_skips(kind: str, record: dict) -> list[dict]:
    """Skip-log rows for the ratios of an ``"out"`` row whose compression failed the math
    integrity check (``compress/integrity.py``): the text was not written, the reason is logged."""
    if kind != "out":
        return []
    return [{"key": record["key"], "line": record["line"], "ratio": ratio, "reason": why}
            for ratio, why in record["dropped"].items() if why.startswith("math_integrity")]
