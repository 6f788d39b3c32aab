"""``python -m extra_cot.study``: the method's payoff measured with splits and intervals (issue 17).

See ``python -m extra_cot.study --help`` and :mod:`extra_cot.study.config`.
"""

from __future__ import annotations

import sys

from extra_cot.demo.runner import print_steps, run_main
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

    def finish() -> str:
        if args.results and (not cfg.only or "report" in cfg.only):
            from extra_cot.study.report import main as report

            report(["--out", str(cfg.root), "--results", args.results])
        return f"report: {cfg.root / 'study.md'}"

    return run_main(cfg, steps, argv, name="study", prog=["python", "-m", "extra_cot.study"],
                    config_file="study_config.json", finish=finish)


if __name__ == "__main__":
    raise SystemExit(main())
