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
from pathlib import Path

from extra_cot.demo.runner import print_steps, run_main
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

    def finish() -> str:
        if args.results:
            write_report(cfg.root, Path(args.results))
        return f"report: {cfg.root / 'chrpo_learning.md'}"

    return run_main(cfg, steps, argv, name="CHRPO learning run", prog=["python", "benchmarks/chrpo_learning.py"],
                    config_file="learning_config.json", finish=finish)


if __name__ == "__main__":
    raise SystemExit(main())
