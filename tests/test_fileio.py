"""fileio: the one JSONL reader and atomic writer (files and folders)."""

from __future__ import annotations

import json

import pytest

from extra_cot.fileio import (
    atomic_output,
    atomic_write_json,
    atomic_write_jsonl,
    expand_inputs,
    read_jsonl,
    read_jsonl_inputs,
)


def test_atomic_write_leaves_no_tmp(tmp_path):
    atomic_write_json(tmp_path / "a" / "m.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == {"x": 1}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["m.json"]


def test_atomic_output_replaces_a_folder_and_keeps_the_old_one_on_error(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.bin").write_text("old")
    with atomic_output(out) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.bin"]
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.mkdir()
        raise RuntimeError("save failed")
    assert [p.name for p in out.iterdir()] == ["new.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary left behind


def test_atomic_output_keeps_the_suffix_and_jsonl_round_trips(tmp_path):
    with atomic_output(tmp_path / "plot.png") as tmp:
        assert tmp.suffix == ".png"  # matplotlib picks the format from it
        tmp.write_bytes(b"png")
    atomic_write_jsonl(tmp_path / "r.jsonl", [{"q": "é"}, {"q": 2}])
    assert [(n, r) for n, r in read_jsonl(tmp_path / "r.jsonl")] == [(1, {"q": "é"}), (2, {"q": 2})]
    (tmp_path / "bad.jsonl").write_text('{"q": 1}\n\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not JSON"):
        list(read_jsonl(tmp_path / "bad.jsonl"))


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


def test_read_records_streams_json_arrays_across_chunk_boundaries(tmp_path, monkeypatch):
    import random

    from extra_cot import fileio

    monkeypatch.setattr(fileio, "_CHUNK", 7)  # every record and number straddles a refill
    rng = random.Random(0)
    for trial in range(50):
        values = [{"q": "x" * rng.randint(0, 30), "n": rng.randint(0, 10**6)} if rng.random() < 0.8
                  else rng.choice([123456, "s,]", [1, [2]], None]) for _ in range(rng.randint(0, 8))]
        (tmp_path / "a.json").write_text(json.dumps(values, indent=2 if trial % 2 else None))
        assert [v for _, v in fileio.read_records(tmp_path / "a.json")] == values
    (tmp_path / "b.json").write_text('[{"a": 1}, {"a": ')
    with pytest.raises(ValueError, match=r"b.json:2: not JSON"):
        list(fileio.read_records(tmp_path / "b.json"))
    (tmp_path / "c.json").write_text('{"a": 1}\n\n[2]\n')  # JSON lines in a .json file
    assert list(fileio.read_records(tmp_path / "c.json")) == [(1, {"a": 1}), (3, [2])]


def test_stale_options_names_what_differs_and_compares_as_json():
    from extra_cot.fileio import stale_options

    saved = {"ratios": [0.2, 0.4], "seed": 1, "extra": "ignored"}
    assert stale_options("out.jsonl", saved, {"ratios": (0.2, 0.4), "seed": 1}) is None  # tuple == stored list
    problem = stale_options("out.jsonl", saved, {"ratios": (0.2,), "seed": 1, "new": True})
    assert problem == ("out.jsonl was written with {'ratios': [0.2, 0.4], 'new': None}, "
                       "this run wants {'ratios': [0.2], 'new': True}")


def test_refuse_overlap_sees_through_links_folders_and_globs(tmp_path):
    from extra_cot.fileio import refuse_overlap

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("{}\n")
    (tmp_path / "link.jsonl").symlink_to(data / "a.jsonl")
    for spec, output in ((data / "a.jsonl", tmp_path / "link.jsonl"), (data, data / "sub" / "out.jsonl"),
                         (f"{data}/*.jsonl", data / "b.jsonl"), (data / "a.jsonl", data / "a.jsonl")):
        with pytest.raises(ValueError, match="is, or lies inside, the input"):
            refuse_overlap(spec, [output], "--output")
    for spec, output in ((data / "a.jsonl", data / "b.jsonl"), (f"{data}/*.jsonl", data / "b.json"),
                         (data, tmp_path / "data2")):
        refuse_overlap(spec, [output], "--output")  # beside the input, not in it
