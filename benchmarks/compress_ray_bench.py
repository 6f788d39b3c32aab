"""Scale-out part of ``compress_bench.py --ray``: end-to-end ``extra-cot compress`` wall time,
single process vs ``--ray --num-workers N``, on the same rows, scorer and options, in one run.

Each configuration runs the real command (``extra_cot.compress.cli.run``) into a fresh folder;
times include the scorer load (once per process / once per actor, in parallel) but not
``ray.init`` (measured apart: a cluster is started once per job). Every Ray output is checked to be
byte-identical to the single-process one.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def _time_compress(argv: list[str]) -> float:
    from extra_cot.compress.cli import build_parser, run

    t = time.perf_counter()
    run(build_parser().parse_args(argv))
    return time.perf_counter() - t


def ray_bench(data: str, rows: int, scorers: list[str], workers: list[int], tokenizer: str | None,
              batch_size: int) -> list[dict]:
    """One result row per (scorer, configuration); ``speedup`` is over the single process."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local cluster (docs/hosts.md)
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
    init_s = time.perf_counter() - t
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for scorer in scorers:
                base = ["--input", data, "--input-format", "gsm8k", "--limit", str(rows), "--scorer", scorer]
                if tokenizer:
                    base += ["--tokenizer", tokenizer]
                single_out = Path(tmp, scorer, "single.jsonl")
                single_s = _time_compress([*base, "--output", str(single_out)])
                results.append({"scorer": scorer, "mode": "single process", "workers": 1, "rows": rows,
                                "wall_s": round(single_s, 1), "rows_per_s": round(rows / single_s, 2),
                                "speedup": 1.0, "identical": "-"})
                for n in workers:
                    out = Path(tmp, scorer, f"ray{n}.jsonl")
                    wall = _time_compress([*base, "--output", str(out), "--ray", "--num-workers", str(n),
                                           "--batch-size", str(batch_size)])
                    results.append({"scorer": scorer, "mode": "ray", "workers": n, "rows": rows,
                                    "wall_s": round(wall, 1), "rows_per_s": round(rows / wall, 2),
                                    "speedup": round(single_s / wall, 2),
                                    "identical": out.read_bytes() == single_out.read_bytes()})
    finally:
        ray.shutdown()
    for r in results:
        r["ray_init_s"] = round(init_s, 1)
    return results
