"""The one entry of the step-runner experiments: the demo, the study, the CHRPO learning run, the demo's
validation table.

Each experiment is an :class:`Experiment` (its parser, config, steps and what to do when they are
done); :func:`main` is the shared body of their ``main(argv)``: parse the flags, build the config and
the steps (a bad option -> one line ``NAME: cause``, exit 2), ``--list`` prints the steps, otherwise
save the config, record the invocation and run the steps with the resumable runner
(:mod:`extra_cot.demo.runner`). Exit codes: 0 done, 1 a step failed, 2 a bad option, 130 interrupted
(rerunning the same command resumes).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from extra_cot.demo.runner import StepFailed, print_steps, record_invocation, run_steps
from extra_cot.fileio import atomic_write_json


@dataclass(frozen=True)
class Experiment:
    """What one experiment's ``main`` differs in; every field is passed through :func:`main` unchanged."""

    #: shown in "NAME finished in …" / "NAME FAILED: …" (e.g. ``"study"``)
    name: str
    #: how the experiment is invoked, recorded with the flags in the run's state (e.g. ``python -m extra_cot.study``)
    prog: tuple[str, ...]
    #: the prefix of a bad option's one-line error (e.g. ``extra_cot.study``)
    error_name: str
    #: the resolved config's file name under the run's folder (e.g. ``study_config.json``)
    config_file: str
    parser: Callable[[], argparse.ArgumentParser]
    config_from_args: Callable[[argparse.Namespace], object]
    build_steps: Callable[[object], list]
    #: runs after the steps (e.g. writes the record); returns where the result is, for the last line
    finish: Callable[[object, argparse.Namespace], str]
    #: exceptions of building the config (and, with ``steps_checked``, the steps) that mean a bad option
    user_errors: tuple[type[BaseException], ...] = (ValueError,)
    #: whether building the steps can fail on a bad option too (caught as ``user_errors``)
    steps_checked: bool = False


def main(experiment: Experiment, argv: Sequence[str] | None = None) -> int:
    """Parse, build, list or run one experiment; the exit code (module doc)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = experiment.parser().parse_args(argv)
    try:
        cfg = experiment.config_from_args(args)
        steps = experiment.build_steps(cfg) if experiment.steps_checked else None
    except experiment.user_errors as err:
        print(f"{experiment.error_name}: {err}", file=sys.stderr)
        return 2
    if steps is None:
        steps = experiment.build_steps(cfg)
    if args.list:
        print_steps(steps)
        return 0
    return _run(cfg, steps, argv, name=experiment.name, prog=list(experiment.prog),
                config_file=experiment.config_file, finish=lambda: experiment.finish(cfg, args))


def _run(cfg, steps: list, argv: list[str], *, name: str, prog: list[str], config_file: str,
         finish: Callable[[], str]) -> int:
    """Save the config, record the invocation, run the steps; ``finish()`` runs after them (e.g. writes
    the record) and returns where the result is. Exit codes: 0 done, 1 a step failed, 130 interrupted."""
    atomic_write_json(cfg.root / config_file, cfg.to_dict())
    record_invocation(cfg.root, argv, prog)
    started = time.monotonic()
    try:
        run_steps(cfg, steps)
    except StepFailed as err:
        print(f"\n{name.upper()} FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume (outputs in {cfg.root})", file=sys.stderr)
        return 130
    where = finish()
    print(f"\n{name} finished in {time.monotonic() - started:.0f} s; {where}")
    return 0
