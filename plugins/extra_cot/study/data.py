"""Study step ``data``: the problem sets of one study, split by seed, under ``OUT/data``.

``python -m extra_cot.study.data --out runs/study/data --seed 0 [--task chains]``

* ``train.jsonl``, ``policy.jsonl``: training traces ``{"question", "response", "gold", "grade"}``
  (``response`` = ``<think>\\n…</think>\\n\\n…\\boxed{N}``; ``extra-cot compress --input-format
  responses``; ``chains`` rows also carry the GSM8K-format ``answer``): the first pass trains on
  ``train``; ``policy`` is swept for γ*, then trains the second pass.
* ``policy_gsm8k.jsonl``, ``val.jsonl``, ``test.jsonl``: GSM8K-format rows (+ ``grade``) for eval.
* ``val_traces.jsonl``, ``test_traces.jsonl``: the held-out problems' reference traces (realized ratio
  against the reference).
* ``data_config.json``: options, counts and the trace statistics of the training traces.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from extra_cot import fileio
from extra_cot.demo.problems import to_gsm8k
from extra_cot.tasks import TASKS, generate, trace_row

CONFIG_NAME = "data_config.json"
#: split name -> size flag, in generation order (the seed decides every row of every split).
SPLIT_ORDER = ("train", "policy", "val", "test")


def build_splits(seed: int, sizes: dict[str, int], task: str = "varied") -> dict[str, list[dict]]:
    """Generated problems of ``task`` (:data:`extra_cot.tasks.TASKS`), disjoint questions, cut in
    :data:`SPLIT_ORDER`."""
    rows = generate(task, sum(sizes[s] for s in SPLIT_ORDER), seed=seed)
    out, start = {}, 0
    for name in SPLIT_ORDER:
        out[name] = rows[start:start + sizes[name]]
        start += sizes[name]
    return out


def write_sets(out: Path, seed: int, sizes: dict[str, int], task: str = "varied") -> dict[str, int]:
    splits = build_splits(seed, sizes, task)

    def to_trace(row: dict) -> dict:
        return trace_row(task, row)

    files = {"train.jsonl": [to_trace(r) for r in splits["train"]],
             "policy.jsonl": [to_trace(r) for r in splits["policy"]],
             "policy_gsm8k.jsonl": [to_gsm8k(r) for r in splits["policy"]],
             "val.jsonl": [to_gsm8k(r) for r in splits["val"]],
             "test.jsonl": [to_gsm8k(r) for r in splits["test"]],
             "val_traces.jsonl": [to_trace(r) for r in splits["val"]],
             "test_traces.jsonl": [to_trace(r) for r in splits["test"]]}
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        fileio.atomic_write_jsonl(out / name, rows)
    return {name: len(rows) for name, rows in files.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="generator and split seed (default 0)")
    p.add_argument("--task", choices=sorted(TASKS), default="varied",
                   help="problem generator (extra_cot.tasks): varied (the default) or chains")
    for name, default in (("train", 96), ("policy", 96), ("val", 100), ("test", 200)):
        p.add_argument(f"--{name}", type=int, default=default, help=f"problems in the {name} split ({default})")
    args = p.parse_args(argv)
    sizes = {name: getattr(args, name) for name in SPLIT_ORDER}
    if any(v < 1 for v in sizes.values()):
        p.error(f"every split needs >= 1 problem, got {sizes}")
    counts = write_sets(Path(args.out), args.seed, sizes, args.task)
    fileio.atomic_write_json(Path(args.out) / CONFIG_NAME, {**vars(args), "counts": counts})
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
