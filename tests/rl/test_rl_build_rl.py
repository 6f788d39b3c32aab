"""extra-cot build-rl on a synthetic evaluation tree written in the eval contract format."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from extra_cot.gamma import gt_ratio
from extra_cot.rl.build_rl import EXIT_TOO_FEW_ROWS, main
from extra_cot.rl.rl_data import QuestionStats, decide
from extra_cot.tokens import FIXED_RATIOS

REF = 200  # think tokens at <COMP_100>


def _record(idx, sample, ratio, correct, think):
    return {
        "index": idx,
        "sample": sample,
        "question": f"What is {idx} + 1?",
        "prompt": "p",
        "output": "o",
        "pred": str(idx + 1) if correct else "0",
        "gold": str(idx + 1),
        "correct": correct,
        "think_tokens": think,
        "control": f"<COMP_{round(ratio * 100)}>",
        "latency_s": 0.1,
    }


def _write_tree(root, questions, dataset="gsm8k"):
    """questions: idx -> {ratio: (n_correct_of_3, think_tokens_of_correct)}."""
    for ratio in FIXED_RATIOS:
        records = []
        for idx, spec in questions.items():
            n_ok, think = spec[ratio]
            for s in range(3):
                records.append(_record(idx, s, ratio, s < n_ok, think if s < n_ok else 999))
        path = root / dataset / f"{ratio:.1f}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "prediction.json").write_text(json.dumps(records))


def _question(target, rho=None, hole=None):
    """Passes at every ratio >= target (calibrated think length), fails below and at ``hole``."""
    spec = {}
    for r in FIXED_RATIOS:
        ok = r >= target - 1e-9 and r != hole
        spec[r] = (1 if ok else 0, round(REF * (rho if (rho is not None and abs(r - target) < 1e-9) else r)))
    return spec


def test_rl_gt_ratio_and_window():
    assert gt_ratio({0.2: False, 0.4: True, 0.6: True, 0.8: True, 1.0: True}) == 0.4
    assert gt_ratio({0.2: True, 0.4: False, 0.6: True, 0.8: True, 1.0: True}) == 0.6  # suffix only
    assert gt_ratio({0.2: True, 0.4: True, 0.6: True, 0.8: True, 1.0: False}) is None
    item = QuestionStats(
        "d",
        0,
        "q",
        "1",
        {r: True for r in FIXED_RATIOS},
        {0.2: 45.0, 0.4: 80.0, 0.6: 120.0, 0.8: 160.0, 1.0: 200.0},
    )
    assert decide(item, 0.1).status == "kept" and decide(item, 0.1).rho == pytest.approx(0.225)
    item.think[0.2] = 60.0  # rho 0.3 = upper edge, excluded: [γ*-τ, γ*+τ)
    assert decide(item, 0.1).status == "window"
    item.think[0.2] = 20.0  # rho 0.1 = lower edge, included
    assert decide(item, 0.1).status == "kept"


def test_rl_build_rl_writes_verl_parquet(tmp_path, capsys):
    questions = {}
    for i in range(40):  # 8 per target ratio, all inside the window
        questions[i] = _question(FIXED_RATIOS[i % 5])
    questions[100] = _question(0.4, rho=0.7)  # outside the window at γ* = 0.4
    questions[101] = _question(0.2, hole=1.0)  # fails at 1.0: no γ*
    questions[102] = _question(0.2, hole=0.6)  # γ* = 0.8 (suffix 0.8, 1.0)
    _write_tree(tmp_path / "sweep", questions)
    out = tmp_path / "rl"
    argv = ["--sweep", str(tmp_path / "sweep"), "--output-dir", str(out), "--quotas", "none", "--val-size", "4",
            "--train-batch-size", "37"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "gt_ratio" in printed and "dropped_window" in printed
    train, val = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "val.parquet")
    assert len(train) + len(val) == 41 and len(val) == 4
    row = train.iloc[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][-1]["content"].endswith(" <COMP_AUTO>")
    assert row["reward_model"]["style"] == "rule"
    info = row["extra_info"]
    assert info["comp_tolerance"] == pytest.approx(0.1) and info["ref_full_len"] == pytest.approx(REF)
    by_idx = {
        r["extra_info"]["index"]: r["extra_info"]["gt_ratio"] for _, r in pd.concat([train, val]).iterrows()
    }
    assert 100 not in by_idx and 101 not in by_idx and by_idx[102] == pytest.approx(0.8)
    assert by_idx[0] == pytest.approx(0.2) and by_idx[3] == pytest.approx(0.8)
    stats = {r["gt_ratio"]: r for r in json.loads((out / "build_rl_stats.json").read_text())}
    assert stats["0.4"]["dropped_window"] == 1 and stats["none"]["dropped_no_pass"] == 1
    assert json.loads((out / "build_rl_config.json").read_text())["quotas"] == "none"
    # Same options again: up to date; other options without --overwrite: refused.
    assert main(argv) == 0
    assert main(["--sweep", str(tmp_path / "sweep"), "--output-dir", str(out)]) == 2


def test_rl_build_rl_applies_method_quotas(tmp_path):
    questions = {i: _question(FIXED_RATIOS[i % 5]) for i in range(100)}  # 20 per ratio
    _write_tree(tmp_path / "sweep", questions)
    out = tmp_path / "rl"
    argv = ["--sweep", str(tmp_path / "sweep"), "--output-dir", str(out), "--val-size", "1", "--train-batch-size", "8"]
    assert main(argv) == 0
    train = pd.concat([pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "val.parquet")])
    counts = train["extra_info"].map(lambda e: round(e["gt_ratio"], 1)).value_counts().to_dict()
    # The scarcest bucket relative to its share is 0.6 (20 / 0.26 -> N = 76); exact shares 13.68,
    # 18.24, 19.76, 16.72, 7.6 floor to 73 rows, the 3 left go to the largest remainders (0.6, 0.8, 0.2).
    assert counts == {0.2: 14, 0.4: 18, 0.6: 20, 0.8: 17, 1.0: 7}


def test_rl_build_rl_bad_input_names_file_and_row(tmp_path, capsys):
    _write_tree(tmp_path / "sweep", {0: _question(0.2)})
    bad = tmp_path / "sweep" / "gsm8k" / "0.6" / "prediction.json"
    records = json.loads(bad.read_text())
    del records[1]["correct"]
    bad.write_text(json.dumps(records))
    assert main(["--sweep", str(tmp_path / "sweep"), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "correct" in err  # the second record, 1-based like every location


def test_rl_parquet_loads_in_verl_rlhf_dataset(tmp_path, tiny_tokenizer):
    from importlib.resources import files

    import yaml
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    _write_tree(tmp_path / "sweep", {i: _question(FIXED_RATIOS[i % 5]) for i in range(10)})
    out = tmp_path / "rl"
    argv = ["--sweep", str(tmp_path / "sweep"), "--output-dir", str(out), "--quotas", "none", "--val-size", "2",
            "--train-batch-size", "8"]
    assert main(argv) == 0
    generated = files("verl.trainer.config") / "_generated_ppo_trainer.yaml"
    data_cfg = OmegaConf.create(yaml.safe_load(generated.read_text())["data"])
    data_cfg.max_prompt_length = 256
    dataset = RLHFDataset(str(out / "train.parquet"), tiny_tokenizer, data_cfg)
    item = dataset[0]
    assert item["raw_prompt"][-1]["content"].endswith("<COMP_AUTO>")
    assert item["extra_info"]["gt_ratio"] in FIXED_RATIOS


def test_rl_build_rl_refuses_an_empty_val_set(tmp_path, capsys):
    _write_tree(tmp_path / "sweep", {i: _question(FIXED_RATIOS[i % 5]) for i in range(9)})  # 9 * 0.05 -> 0
    out = tmp_path / "rl"
    argv = ["--sweep", str(tmp_path / "sweep"), "--output-dir", str(out), "--quotas", "none", "--train-batch-size", "4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "val set would be empty: 9 selected rows x --val-size 0.05 = 0 rows" in err and "--val-size" in err
    assert not (out / "train.parquet").exists() and not (out / "build_rl_config.json").exists()
    assert main([*argv, "--val-size", "1"]) == 0  # the fix the message names works
    assert len(pd.read_parquet(out / "val.parquet")) == 1 and len(pd.read_parquet(out / "train.parquet")) == 8


def test_rl_build_rl_refuses_fewer_train_rows_than_one_batch(tmp_path, capsys):
    _write_tree(tmp_path / "sweep", {i: _question(FIXED_RATIOS[i % 5]) for i in range(20)})
    out = tmp_path / "rl"
    base = ["--sweep", str(tmp_path / "sweep"), "--output-dir", str(out), "--quotas", "none", "--val-size", "2"]
    assert main(base) == EXIT_TOO_FEW_ROWS == 3  # default: verl's data.train_batch_size 1024
    err = capsys.readouterr().err
    assert "train set has 18 rows" in err and "--train-batch-size 1024" in err
    assert main([*base, "--train-batch-size", "19"]) == 3
    assert "train set has 18 rows" in capsys.readouterr().err
    assert not (out / "train.parquet").exists() and not (out / "build_rl_config.json").exists()
    assert main([*base, "--train-batch-size", "18"]) == 0
    assert json.loads((out / "build_rl_config.json").read_text())["train_batch_size"] == 18
