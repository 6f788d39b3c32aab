"""File I/O shared by every command: JSONL reading with row-named errors, the typed field checks
that refuse (never coerce) a bad value, the check that no output is, or lies inside, an input,
atomic writes (a crash never leaves a half-written file), and the one check that a resumed output
was written with this run's options."""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line_number, row)`` for each non-empty line; a bad line raises naming file and line."""
    for n, row in read_records(path):
        if not isinstance(row, dict):  # a data error, reported like the others
            raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")  # noqa: TRY004
        yield n, row


_CHUNK = 1 << 20  # characters read at a time by the streaming JSON-array reader


def read_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(n, value)`` for each record of a JSON-lines file or a ``.json`` file holding one array,
    streamed: memory holds one record (and a 1 MiB read buffer), whatever the file size.

    ``n`` is the 1-based line of a JSON-lines record, or the 1-based position in the array; a
    record that is not JSON raises naming ``path:n``. Values are not checked to be objects
    (the caller reports that like any other bad row).
    """
    if str(path).endswith(".json"):
        with open(path, encoding="utf-8") as fh:
            try:
                head = fh.read(_CHUNK)
                if head.lstrip().startswith("["):
                    yield from _array_records(fh, head, path)
                    return
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start} of a read chunk)") from None
    with open(path, "rb") as fh:  # bytes, so that a non-UTF-8 line is named by its number
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{n}: not UTF-8 ({exc.reason} at byte {exc.start} of the line)") from None
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None


def _array_records(fh, buf: str, path: str | Path) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos, n, eof = buf.index("[") + 1, 0, False
    while True:
        while True:  # skip white space and the separator; refill when the buffer runs out
            while pos < len(buf) and (buf[pos].isspace() or (buf[pos] == "," and n)):
                pos += 1
            if pos < len(buf) or eof:
                break
            buf, pos = fh.read(_CHUNK), 0
            eof = not buf
        if pos < len(buf) and buf[pos] == "]":
            return
        try:
            value, end = decoder.raw_decode(buf, pos)
            complete = end < len(buf) or eof  # "12" at the buffer's end may be the start of "123"
        except json.JSONDecodeError as exc:
            if eof:
                raise ValueError(f"{path}:{n + 1}: not JSON ({exc.msg})") from None
            complete = False
        if not complete:
            more = fh.read(_CHUNK)
            buf, pos, eof = buf[pos:] + more, 0, not more
            continue
        n += 1
        yield n, value
        pos = end


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


def refuse_overlap(input_spec: str | Path, outputs: Iterable[str | Path], flag: str) -> None:
    """Raise ValueError when an output is, or lies inside, an input: the input file, its folder of
    parts, or a path its glob matches. Writing there would overwrite or append to the input, or
    make the next run read its own output back as input."""
    spec = Path(input_spec)
    roots = [spec.resolve()] if spec.exists() else []
    pattern = None if roots else os.path.abspath(input_spec)
    for output in outputs:
        out = Path(output).resolve()
        hit = next((r for r in roots if out == r or r in out.parents), None)
        if hit is None and pattern is not None and fnmatch.fnmatch(str(out), pattern):
            hit = pattern
        if hit is not None:
            raise ValueError(f"{flag} {output}: is, or lies inside, the input {hit}; a run would overwrite or "
                             f"reread its own input. Fix: write the output somewhere else")


# ---- typed fields of input rows: refuse a bad value, never coerce it (errors name file, row, field)


def field_error(where: str, field: str, problem: str) -> ValueError:
    """The one form of a bad-field error: ``FILE:ROW: field 'NAME': PROBLEM``."""
    return ValueError(f"{where}: field {field!r}: {problem}")


def require_text(row: Mapping, field: str, where: str) -> str:
    """A non-empty string (leading/trailing white space kept)."""
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise field_error(where, field, f"expected a non-empty string, got {_shown(value)}")
    return value


def require_bool(row: Mapping, field: str, where: str) -> bool:
    """A JSON ``true``/``false``; ``"false"``, ``0`` or ``null`` are refused (``bool("false")`` is True)."""
    value = row.get(field)
    if not isinstance(value, bool):
        raise field_error(where, field, f"expected true or false, got {_shown(value)}")
    return value


def require_count(row: Mapping, field: str, where: str, nullable: bool = False) -> int | None:
    """A whole number >= 0 (``null`` too when ``nullable``); bools and floats are refused."""
    value = row.get(field)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise field_error(where, field, f"expected a whole number >= 0, got {_shown(value)}")
    return value


def require_gold(row: Mapping, field: str, where: str) -> str:
    """A gold answer as text: a non-empty string or a finite number. A missing, null, empty,
    boolean, list or object gold is refused: its ``str()`` (``"None"``, ``"[1, 2]"``) would be
    graded as an answer, and ``\\boxed{None}`` rewarded."""
    value = row.get(field)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise field_error(where, field, f"expected a non-empty string or a finite number, got {_shown(value)}")


def _shown(value: Any) -> str:
    if value is None:
        return "null (or missing)"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{type(value).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


class Appender:
    """Appends one JSON row per ``os.write`` on an O_APPEND descriptor (a row is never torn
    between two writers), fsync'd so a crash loses at most the row being written."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
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


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one row to a JSONL log, durably (:class:`Appender` for a single row)."""
    with Appender(path) as log:
        log.write(row)


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


def stale_options(path: str | Path, saved: dict, want: dict) -> str | None:
    """Which of ``want`` differ from the options ``saved`` beside the outputs at ``path``; None if none.

    Resumable commands and the demo's steps call it before reusing finished outputs: appending
    to, or skipping, outputs written with other options would mix two configurations silently.
    Values are compared as JSON stores them (tuples as lists).
    """
    want = json.loads(json.dumps(want))
    stale = {k: saved.get(k) for k, v in want.items() if saved.get(k) != v}
    return f"{path} was written with {stale}, this run wants { {k: want[k] for k in stale} }" if stale else None
