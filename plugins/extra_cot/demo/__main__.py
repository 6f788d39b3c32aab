"""``python -m extra_cot.demo`` (``make demo``): the whole pipeline end to end on CPU.

See ``python -m extra_cot.demo --help`` and :mod:`extra_cot.demo.config` for sizes and budget.
"""

from __future__ import annotations

from extra_cot import experiment
from extra_cot.demo.config import config_from_args, parser
from extra_cot.demo.steps import build_steps

DEMO = experiment.Experiment(
    name="demo", prog=("python", "-m", "extra_cot.demo"), error_name="extra_cot.demo",
    config_file="demo_config.json", parser=parser, config_from_args=config_from_args, build_steps=build_steps,
    finish=lambda cfg, args: f"summary: {cfg.root / 'summary.md'}")


def main(argv: list[str] | None = None) -> int:
    return experiment.main(DEMO, argv)


if __name__ == "__main__":
    raise SystemExit(main())
