"""Demo step ``data``: the problem sets of one demo run, written under ``OUT/data``.

``python -m extra_cot.demo.data --out runs/demo/data --sft 96 --rl 24 --test 40 [--task chains]``

* ``sft_source.jsonl``: Stage 1 input. Generated problems (``--task``, :mod:`extra_cot.tasks`): traces
  in the ``extra-cot compress --input-format responses`` shape; GSM8K (``--gsm8k-train``): the GSM8K rows
  themselves (``--input-format gsm8k``, their worked solutions are the chains of thought).
* ``rl.jsonl``: the next ``--rl`` training-split questions (GSM8K format, with ``grade``) for the sweep
  of the first-pass model, which gives their γ* (the ``<COMP_AUTO>`` rows) and the Stage 3 data.
* ``rl_source.jsonl``: the same questions with their chains of thought (Stage 1 input of the second pass).
* ``test.jsonl``: ``--test`` held-out questions (GSM8K format) for evaluation.
* ``data_config.json``: the resolved options and counts (the step's completion marker).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from itertools import islice
from pathlib import Path

from extra_cot import fileio
from extra_cot.demo.problems import ProblemOptions, to_gsm8k
from extra_cot.gsm8k import operation_count, split_solution
from extra_cot.tasks import TASKS, generate, trace_row
from extra_cot.tasks.chains import ChainOptions

CONFIG_NAME = "data_config.json"
#: The demo's default task (``make demo``): the study's budget-sensitive ``chains`` (issue 36).
DEFAULT_TASK = "chains"
#: The demo's problem family per task, smaller than the study's (the generators' defaults) so a 135M
#: model trained for minutes learns it: ``chains`` with 1-3 steps (the study: 1-4; docs/demo.md);
#: ``varied`` with one or two operations and small numbers (the issue-10 family of the earlier demo record).
DEMO_OPTIONS = {"chains": ChainOptions(steps=(1, 2, 3)), "varied": ProblemOptions(max_steps=2)}
#: Flags of one task's generator only (``--task varied``).
_VARIED_ONLY = ("max_start", "max_factor", "max_add")


def _gsm8k_rows(path: str, n: int, what: str) -> list[dict]:
    """The first ``n`` rows of a GSM8K JSONL file, checked; errors name ``file:line``."""
    numbered = list(islice(fileio.read_jsonl(path), n))
    if len(numbered) < n:
        raise ValueError(f"{path}: has {len(numbered)} rows, the demo needs {n} for {what}; lower the size flags")
    for line, row in numbered:
        if not isinstance(row.get("question"), str):
            raise ValueError(f"{path}:{line}: need a 'question' string (GSM8K format)")  # noqa: TRY004
        split_solution(row.get("answer"), f"{path}:{line}")
    return [{**row, "grade": row.get("grade", operation_count(row["answer"]))} for _, row in numbered]


def build_sets(args: argparse.Namespace) -> tuple[dict[str, list[dict]], str]:
    """(file name -> rows, compress input format)."""
    if args.gsm8k_train:
        train = _gsm8k_rows(args.gsm8k_train, args.sft + args.rl, "--sft + --rl")
        test_path = args.gsm8k_test or args.gsm8k_train.replace("train", "test")
        test = _gsm8k_rows(test_path, args.test, "--test")
        sets = {"sft_source.jsonl": train[: args.sft], "rl.jsonl": train[args.sft:], "rl_source.jsonl": train[args.sft:],
                "test.jsonl": test}
        return sets, "gsm8k"
    rows = generate(args.task, args.sft + args.rl + args.test, seed=args.seed, options=generator_options(args))
    sft, rl, test = rows[: args.sft], rows[args.sft: args.sft + args.rl], rows[args.sft + args.rl:]
    sets = {"sft_source.jsonl": [trace_row(args.task, r) for r in sft], "rl.jsonl": [to_gsm8k(r) for r in rl],
            "rl_source.jsonl": [trace_row(args.task, r) for r in rl], "test.jsonl": [to_gsm8k(r) for r in test]}
    return sets, "responses"


def generator_options(args: argparse.Namespace) -> ChainOptions | ProblemOptions:
    """The ``--task`` generator's options: :data:`DEMO_OPTIONS` with the size flags given on top."""
    default = DEMO_OPTIONS[args.task]
    if args.task == "chains":
        given = [f"--{name.replace('_', '-')}" for name in _VARIED_ONLY if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: options of --task varied; --task chains takes --min-steps/--max-steps")
        low = default.steps[0] if args.min_steps is None else args.min_steps
        high = default.steps[-1] if args.max_steps is None else args.max_steps
        if low > high:
            raise ValueError(f"--min-steps {low} > --max-steps {high}")
        return ChainOptions(steps=tuple(range(low, high + 1)))
    sizes = {name: getattr(args, name) for name in ("min_steps", "max_steps", *_VARIED_ONLY)}
    return ProblemOptions(**{**asdict(default), **{k: v for k, v in sizes.items() if v is not None}})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m extra_cot.demo.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m extra_cot.demo.data --out runs/demo/data --sft 96 --rl 24 --test 40\n"
        "  python -m extra_cot.demo.data --out runs/gsm8k/data --gsm8k-train ../shared/data/gsm8k_train.jsonl \\\n"
        "      --gsm8k-test ../shared/data/gsm8k_test.jsonl --sft 200 --rl 50 --test 100",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sft", type=int, default=96, help="problems for Stage 1/2 (SFT source)")
    p.add_argument("--rl", type=int, default=24, help="training-split problems for the Stage 3 sweep")
    p.add_argument("--test", type=int, default=40, help="held-out evaluation problems")
    p.add_argument("--seed", type=int, default=0, help="problem generator seed")
    p.add_argument("--task", choices=sorted(TASKS), default=DEFAULT_TASK,
                   help=f"problem generator (extra_cot.tasks; default {DEFAULT_TASK}): chains = 1-3 bare ± steps after "
                   "fixed prose (the budget matters), varied = word problems with varied traces")
    c, v = DEMO_OPTIONS["chains"], DEMO_OPTIONS["varied"]
    p.add_argument("--min-steps", type=int, default=None,
                   help=f"generated problems: fewest steps (chains {c.steps[0]}, varied {v.min_steps})")
    p.add_argument("--max-steps", type=int, default=None,
                   help=f"generated problems: most steps (chains {c.steps[-1]}, varied {v.max_steps})")
    p.add_argument("--max-start", type=int, default=None, help=f"varied only: largest start value ({v.max_start})")
    p.add_argument("--max-factor", type=int, default=None, help=f"varied only: largest items per box ({v.max_factor})")
    p.add_argument("--max-add", type=int, default=None, help=f"varied only: most items found or given at once ({v.max_add})")
    p.add_argument("--gsm8k-train", default=None, help="use GSM8K rows from this JSONL instead of generating")
    p.add_argument("--gsm8k-test", default=None, help="GSM8K test JSONL (default: --gsm8k-train with train->test)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name in ("sft", "rl", "test"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets, input_format = build_sets(args)
    for name, rows in sets.items():
        fileio.atomic_write_jsonl(out / name, rows)
        print(f"wrote {out / name} ({len(rows)} rows)")
    config = {**vars(args), "input_format": input_format, "counts": {k: len(v) for k, v in sets.items()}}
    fileio.atomic_write_json(out / CONFIG_NAME, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
