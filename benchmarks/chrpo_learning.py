"""CHRPO learns the budget? verl's real ``main_ppo`` on this CPU, CHRPO vs GRPO from one SFT checkpoint.

    python benchmarks/chrpo_learning.py --study runs/study --results results   # the record
    python benchmarks/chrpo_learning.py --split val --out runs/chrpo-val       # choose options on val
    python benchmarks/chrpo_learning.py --list                                 # every step's command

Needs a finished study (``python -m extra_cot.study``, ``make study``): its SFT model, seed and
held-out splits. Steps, outputs and the per-step / held-out accounting: :mod:`extra_cot.study.learning`.
Resumable: rerun the same command after an interruption; ``--force STEP`` redoes a step and all after it.
"""

from __future__ import annotations

import sys
import time

from extra_cot.demo.__main__ import record_invocation
from extra_cot.demo.runner import StepFailed, print_steps, run_steps
from extra_cot.fileio import atomic_write_json
from extra_cot.study.learning import build_steps, config_from_args, parser, write_report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        print(f"chrpo_learning: {err}", file=sys.stderr)
        return 2
    steps = build_steps(cfg)
    if args.list:
        print_steps(steps)
        return 0
    atomic_write_json(cfg.root / "learning_config.json", cfg.to_dict())
    record_invocation(cfg.root, argv, prog=["python", "benchmarks/chrpo_learning.py"])
    started = time.monotonic()
    try:
        run_steps(cfg, steps)
    except StepFailed as err:
        print(f"\nCHRPO LEARNING RUN FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume (outputs in {cfg.root})", file=sys.stderr)
        return 130
    if args.results:
        from pathlib import Path

        write_report(cfg.root, Path(args.results))
    print(f"\nfinished in {time.monotonic() - started:.0f} s; report: {cfg.root / 'chrpo_learning.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
