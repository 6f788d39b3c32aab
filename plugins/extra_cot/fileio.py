"""File I/O shared by every command: JSONL reading with row-named errors, atomic writes
(a crash never leaves a half-written file)."""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


#: Side files written next to a JSONL output (``extra-cot compress``'s skip log): never data parts.
SIDE_FILE_SUFFIXES = (".skipped.jsonl",)


def expand_inputs(spec: str | Path) -> list[Path]:
    """The JSONL files an ``--input`` names: a file, a directory (its ``*.jsonl`` parts), or a glob
    (``out/part-*.jsonl``); parts in name order, skip logs left out. Nothing found raises."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = path.glob("*.jsonl")
    else:
        found = (Path(p) for p in glob.glob(str(spec)))
    parts = sorted(p for p in found if p.is_file() and not p.name.endswith(SIDE_FILE_SUFFIXES))
    if not parts:
        raise FileNotFoundError(f"no JSONL input at {spec!r}: give a file, a directory of *.jsonl parts or a glob")
    return parts


def read_jsonl_inputs(spec: str | Path) -> Iterator[tuple[Path, int, dict]]:
    """``(file, line_number, row)`` over every part of :func:`expand_inputs` in order."""
    for path in expand_inputs(spec):
        for n, row in read_jsonl(path):
            yield path, n, row


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for any writer (a model folder, a parquet, a PNG, text).

    When the block succeeds the temporary file or folder replaces ``path`` (``os.replace``;
    an existing folder at ``path`` is removed first); when it raises, the temporary is removed
    and ``path`` is untouched. The name keeps ``path``'s suffix (matplotlib picks the format by it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, fsync it, then ``os.replace``."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """One JSON object a line (UTF-8, not ASCII-escaped), atomically."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> None:
    """``obj`` as indented UTF-8 JSON (``default=str`` for paths and the like), atomically."""
    options = {"indent": 2, "ensure_ascii": False, "default": str, **dumps_kwargs}
    atomic_write_text(path, json.dumps(obj, **options) + "\n")
