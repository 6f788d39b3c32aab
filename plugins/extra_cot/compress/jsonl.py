"""JSONL I/O shared by the Stage 1 commands: row-named errors, atomic appends, resume."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from extra_cot.fileio import atomic_write_json


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line_number, row)`` for each non-empty line; a bad line raises naming file and line."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):  # a data error, reported like the others
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")  # noqa: TRY004
            yield n, row


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


class Appender:
    """Appends one JSON row per ``os.write`` on an O_APPEND descriptor (a row is never torn
    between two writers), fsync'd so a crash loses at most the row being written."""

    def __init__(self, path: str | Path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, row: dict) -> None:
        os.write(self.fd, (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Appender:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_json_atomic(path: str | Path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` via a temporary file and ``os.replace``."""
    atomic_write_json(path, obj)
