"""``python -m extra_cot.demo`` (``make demo``): the whole pipeline end to end on CPU.

See ``python -m extra_cot.demo --help`` and :mod:`extra_cot.demo.config` for sizes and budget.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC

from extra_cot.demo.config import config_from_args, parser
from extra_cot.demo.runner import StepFailed, load_state, print_steps, run_steps, save_state
from extra_cot.demo.steps import build_steps
from extra_cot.fileio import atomic_write_json


def record_invocation(root, argv: list[str], module: str = "extra_cot.demo", prog: list[str] | None = None) -> None:
    """Append this invocation (command, UTC start, load) to ``OUT/demo_state.json``: the summary's
    ``demo.json`` (and the study's ``study.json``) names the command(s) that produced the run."""
    import shlex
    from datetime import datetime

    state = load_state(root)
    state.setdefault("invocations", []).append({
        "command": shlex.join([*(prog or ["python", "-m", module]), *argv]),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "code": code_version(),
    })
    save_state(root, state)


def code_version() -> dict:
    """Git commit of the package's checkout and whether its tracked files differ from it (None outside git):
    the results file names the exact code that produced it."""
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def main(argv: list[str] | None = None) -> int:
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
    atomic_write_json(cfg.root / "demo_config.json", cfg.to_dict())
    started = time.monotonic()
    record_invocation(cfg.root, argv if argv is not None else sys.argv[1:])
    try:
        run_steps(cfg, steps)
    except StepFailed as err:
        print(f"\nDEMO FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume (outputs in {cfg.root})", file=sys.stderr)
        return 130
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; summary: {cfg.root / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
