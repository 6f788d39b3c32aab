"""``python -m extra_cot.study``: the method's payoff measured with splits and intervals (issue 17).

See ``python -m extra_cot.study --help`` and :mod:`extra_cot.study.config`.
"""

from __future__ import annotations

import argparse

from extra_cot import experiment
from extra_cot.study.config import StudyConfig, config_from_args, parser
from extra_cot.study.steps import build_steps


def finish(cfg: StudyConfig, args: argparse.Namespace) -> str:
    """``--results``: the report step's record, written into RESULTS too (unless ``--only`` skips the report)."""
    if args.results and (not cfg.only or "report" in cfg.only) and cfg.until in ("", "report"):
        from extra_cot.study.report import main as report

        report(["--out", str(cfg.root), "--results", args.results])
    return f"report: {cfg.root / 'study.md'}"


STUDY = experiment.Experiment(
    name="study", prog=("python", "-m", "extra_cot.study"), error_name="extra_cot.study",
    config_file="study_config.json", parser=parser, config_from_args=config_from_args, build_steps=build_steps,
    finish=finish)


def main(argv: list[str] | None = None) -> int:
    return experiment.main(STUDY, argv)


if __name__ == "__main__":
    raise SystemExit(main())
