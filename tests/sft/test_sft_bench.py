"""The data benchmark runs and prints both paths with their ratio (tiny size)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("llamafactory")
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "sft_data_bench.py"


def test_bench_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("sft_data_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--rows", "16", "--repeat", "1", "--output", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "stock SupervisedDatasetProcessor" in out and "ratio extra_cot / stock" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["rows"] == 16 and res["examples"] > 16


def test_memory_bench_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("sft_data_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--memory", "4", "--output", str(tmp_path / "m.json")]) == 0
    assert "same policy selection before and after: True" in capsys.readouterr().out
    before, after = json.loads((tmp_path / "m.json").read_text())["runs"]
    growth = {r["mode"]: r["rss_peak_mb"] - r["rss_start_mb"] for r in (before, after)}
    assert growth["after"] < growth["before"] / 2, growth  # the whole-file scan holds the file (and more)
