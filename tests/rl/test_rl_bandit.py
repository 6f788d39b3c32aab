"""benchmarks/chrpo_bandit.py runs with verl's functions and CHRPO prefers lower sufficient ratios."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "chrpo_bandit.py"


def _bench():
    spec = importlib.util.spec_from_file_location("chrpo_bandit", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_rl_bandit_chrpo_lowers_ratio_without_losing_accuracy():
    import verl  # noqa: F401

    bench = _bench()
    cfg = bench.BanditConfig(steps=40)
    chrpo = bench.train("chrpo", 0, cfg)
    correct_only = bench.train("grpo_correct", 0, cfg)
    assert chrpo["mean_ratio"] < correct_only["mean_ratio"] - 0.05
    assert chrpo["minimal_share"] > correct_only["minimal_share"]
    assert chrpo["accuracy"] > correct_only["accuracy"] - 0.03


def test_rl_bandit_estimator_cost_small_shape():
    import verl  # noqa: F401

    cost = _bench().estimator_cost(rows=64, cols=32, group=8, repeats=1)
    assert set(cost["seconds"]) == {"chrpo", "grpo", "grpo_vectorized"} and cost["chrpo_over_grpo"] > 0
