"""``python -m extra_cot.demo`` (``make demo``): the whole pipeline end to end on CPU.

See ``python -m extra_cot.demo --help`` and :mod:`extra_cot.demo.config` for sizes and budget.
"""

from __future__ import annotations

import sys

from extra_cot.demo.config import config_from_args, parser
from extra_cot.demo.runner import code_version, print_steps, record_invocation, run_main  # noqa: F401 (re-exported)
from extra_cot.demo.steps import build_steps


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        print(f"extra_cot.demo: {err}", file=sys.stderr)
        return 2
    steps = build_steps(cfg)
    if args.list:
        print_steps(steps)
        return 0
    return run_main(cfg, steps, argv, name="demo", prog=["python", "-m", "extra_cot.demo"],
                    config_file="demo_config.json", finish=lambda: f"summary: {cfg.root / 'summary.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
