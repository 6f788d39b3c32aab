"""What the Stage 1 commands share: resumable JSONL output (atomic appends, resume keys) and
their ``main`` (reading and atomic writes: :mod:`extra_cot.fileio`)."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from extra_cot.cliargs import USER_ERRORS, user_error_line

logger = logging.getLogger("extra_cot.compress")


def row_key(*parts: str) -> str:
    """Stable identity of an input row (for resume)."""
    return hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()[:20]


def prepare_append(path: str | Path, key: str = "key") -> set[str]:
    """Keys already in ``path``; a torn last line (no newline: interrupted write) is cut off."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    keys = set()
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            keys.add(json.loads(line).get(key))
    return keys


def print_counts(stats: Counter) -> None:
    """Outcome counts, one ``name count`` line each."""
    width = max(map(len, stats), default=0) + 2
    for name, n in sorted(stats.items()):
        print(f"{name:<{width}} {n}")


def run_command(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], Any],
    argv: list[str] | None,
    report: Callable[[Any], None] = print_counts,
) -> int:
    """``main`` of a Stage 1 command: parse, ``run``; a user error (:data:`extra_cot.cliargs.USER_ERRORS`:
    bad data or options, a path that cannot be read or written) is logged as one line and exits 2,
    else ``report`` prints the result (default: outcome counts)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except USER_ERRORS as exc:
        logger.error("%s", user_error_line(exc))
        return 2
    report(result)
    return 0
