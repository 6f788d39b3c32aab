"""An opt-in JSONL record of the calls verl makes into our code (estimator, reward manager).

``EXTRA_COT_CALL_LOG=/path/calls.jsonl`` makes the verl adapters append one line per call,
from whichever process verl runs them in (the trainer actor, reward workers): proof that a real
``main_ppo`` run called *our* estimator and manager, and what they saw (tests, the demo's
per-step reward table). Unset, nothing is written. Lines are appended with one ``write`` each
(``O_APPEND``), so records of concurrent processes do not interleave within a line.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from extra_cot.fileio import read_jsonl

#: Environment variable naming the JSONL file; unset = no record.
ENV = "EXTRA_COT_CALL_LOG"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def record(kind: str, **fields: Any) -> None:
    """Append ``{"kind", "pid", "time", **fields}`` to the call log (no-op when it is off)."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "pid": os.getpid(), "time": time.time(), **fields}, default=float)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_calls(path: str | Path, kind: str | None = None) -> list[dict]:
    """The records of ``path`` (of one ``kind`` if given), in file order."""
    if not Path(path).is_file():
        return []
    return [row for _, row in read_jsonl(path) if kind is None or row.get("kind") == kind]
