"""``extra_cot.fileio.expand_inputs``: a file, a directory of parts or a glob, in part order."""

from __future__ import annotations

import pytest

from extra_cot.fileio import expand_inputs, read_jsonl_inputs


def test_file_directory_and_glob(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for name, rows in (("part-001.jsonl", '{"a": 2}\n'), ("part-000.jsonl", '{"a": 0}\n\n{"a": 1}\n')):
        (parts / name).write_text(rows)
    (parts / "part-000.jsonl.skipped.jsonl").write_text('{"reason": "x"}\n')  # a skip log, not data
    (parts / "notes.txt").write_text("not a part")
    assert expand_inputs(parts / "part-001.jsonl") == [parts / "part-001.jsonl"]
    assert expand_inputs(parts) == [parts / "part-000.jsonl", parts / "part-001.jsonl"]
    assert expand_inputs(f"{parts}/part-*.jsonl") == [parts / "part-000.jsonl", parts / "part-001.jsonl"]
    got = [(p.name, n, row["a"]) for p, n, row in read_jsonl_inputs(parts)]
    assert got == [("part-000.jsonl", 1, 0), ("part-000.jsonl", 3, 1), ("part-001.jsonl", 1, 2)]


def test_nothing_found_names_the_spec(tmp_path):
    with pytest.raises(FileNotFoundError, match="no JSONL input at .*missing"):
        expand_inputs(tmp_path / "missing-*.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="directory of"):
        expand_inputs(tmp_path / "empty")
