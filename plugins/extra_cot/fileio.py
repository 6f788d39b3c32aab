"""Atomic file writes shared by every command (a crash never leaves a half-written file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
