"""``python -m extra_cot.study``: the method's payoff measured with splits and intervals (issue 17).

See ``python -m extra_cot.study --help`` and :mod:`extra_cot.study.config`.
"""

from __future__ import annotations

import sys
import time

from extra_cot.demo.__main__ import record_invocation
from extra_cot.demo.runner import StepFailed, print_steps, run_steps
from extra_cot.fileio import atomic_write_json
from extra_cot.study.config import config_from_args, parser
from extra_cot.study.steps import build_steps


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        print(f"extra_cot.study: {err}", file=sys.stderr)
        return 2
    steps = build_steps(cfg)
    if args.list:
        print_steps(steps)
        return 0
    atomic_write_json(cfg.root / "study_config.json", cfg.to_dict())
    started = time.monotonic()
    record_invocation(cfg.root, argv, module="extra_cot.study")
    try:
        run_steps(cfg, steps)
    except StepFailed as err:
        print(f"\nSTUDY FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume (outputs in {cfg.root})", file=sys.stderr)
        return 130
    if args.results and (not cfg.only or "report" in cfg.only):
        from extra_cot.study.report import main as report

        report(["--out", str(cfg.root), "--results", args.results])
    print(f"\nstudy finished in {time.monotonic() - started:.0f} s; report: {cfg.root / 'study.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
