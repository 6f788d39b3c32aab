"""File I/O shared by every command: JSONL reading with row-named errors, atomic writes
(a crash never leaves a half-written file)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line_number, row)`` for each non-empty line; a bad line raises naming file and line."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):  # a data error, reported like the others
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")  # noqa: TRY004
            yield n, row


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync it, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> None:
    """``obj`` as indented UTF-8 JSON (``default=str`` for paths and the like), atomically."""
    options = {"indent": 2, "ensure_ascii": False, "default": str, **dumps_kwargs}
    atomic_write_text(path, json.dumps(obj, **options) + "\n")
