"""The demo's wiring, end to end, with the tiny local model (CI): every real command and host runs.

Two vLLM starts (the first-pass model for the γ* sweep; ``--tiny`` evaluates ``base`` on the trained
model's server); a rerun then
skips every step (resumable) and only refreshes the summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "extra_cot.demo", "--tiny", "--out", str(out), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)


@pytest.mark.slow
def test_demo_tiny_pipeline_end_to_end_and_resume(tmp_path):
    out = tmp_path / "tiny"
    done = _demo(out)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    state = json.loads((out / "demo_state.json").read_text())
    assert list(state["steps"]) == ["data", "model", "compress", "compress-rl", "build-fixed", "prepare-model",
                                    "train-fixed", "sweep", "gamma", "build-sft", "train", "eval-base", "eval", "plot",
                                    "summary"]
    assert len(state["server_starts"]) == 2  # the first-pass model for the sweep, the second for evaluation
    for ratio in ("base", "0.2", "0.4", "0.6", "0.8", "1.0", "policy"):
        metrics = json.loads((out / "eval/chains" / ratio / "metrics.json").read_text())
        assert metrics["n"] == 3 and metrics["ratio"] == ratio
    sweep = json.loads((out / "rl_sweep/chains_rl/1.0/metrics.json").read_text())
    assert sweep["n"] == 9  # 3 items x pass@3
    assert (out / "models/sft/model.safetensors").is_file()
    assert not (out / "rl").exists()  # Stage 3 needs a model that solves sweep questions (real run only)
    assert (out / "eval/plots/realized_vs_target.png").stat().st_size > 0
    summary = (out / "summary.md").read_text()
    assert "| 0.2 |" in summary and "| policy |" in summary and "Wall time per step" in summary
    again = _demo(out)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("skip (done") == 14  # all but the summary
    assert "starting vLLM" not in again.stdout  # nothing redone: no server, no training (what a timer measured)
