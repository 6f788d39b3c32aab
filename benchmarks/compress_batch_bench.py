"""Batched-scoring part of ``compress_bench.py --score-batch-sizes``: scorer rows/s against
``--score-batch-size`` (rows scored together, windows right-padded into one forward pass), in one run.

Every size scores the same rows with one loaded model; the baseline is size 1 (one row per forward
pass, the scoring before batching). ``max_abs_diff`` is the largest difference of any unit score
from the size-1 scores: the float tolerance batching holds (README, "Stage 1 on a GPU cluster").
"""

from __future__ import annotations

import dataclasses
import time

from extra_cot.compress.segment import segment


def batch_bench(sources: list, scorer_opts_by_name: dict, sizes: list[int]) -> list[dict]:
    """One result row per (scorer, batch size): rows/s, speed-up over size 1, max score difference."""
    from extra_cot.compress.scorers import make_scorer

    items = [(src.question, src.cot, segment(src.cot)) for src in sources]
    results = []
    for name, opts in scorer_opts_by_name.items():
        scorer = make_scorer(dataclasses.replace(opts, batch_size=1))
        base_s, reference = None, None
        for size in sorted({1, *sizes}):
            scorer.options = dataclasses.replace(opts, batch_size=size)  # same weights, another batch size
            scorer.score_batch(items[:size])  # warm-up: first-call allocations at this shape
            t = time.perf_counter()
            scores = [s for start in range(0, len(items), size) for s in scorer.score_batch(items[start:start + size])]
            wall = time.perf_counter() - t
            if size == 1:
                base_s, reference = wall, scores
            diff = max((abs(a - b) for row, ref in zip(scores, reference) for a, b in zip(row, ref)), default=0.0)
            results.append({"scorer": name, "batch_size": size, "rows": len(items), "wall_s": round(wall, 2),
                            "rows_per_s": round(len(items) / wall, 2), "speedup": round(base_s / wall, 2),
                            "max_abs_diff": float(f"{diff:.2e}")})
    return results
