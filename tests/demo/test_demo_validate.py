"""``python -m extra_cot.demo.validate``: its steps and its table from evaluation folders (fast, no server)."""

from __future__ import annotations

import json

import pytest

from extra_cot.cliargs import dataclass_from_args
from extra_cot.demo.validate import DATASET, ValidateConfig, build_steps, main, parser, render, table


def _config(tmp_path, *argv):
    data = tmp_path / "val.jsonl"
    rows = [{"question": f"q{i}", "answer": f"#### {i}", "grade": 1 + i % 2} for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = parser().parse_args(["--data", str(data), "--out", str(tmp_path / "out"), *argv])
    return dataclass_from_args(ValidateConfig, args)


def _write_run(folder, tokens, correct, output="<COMP_20>\n<think>x</think>"):
    folder.mkdir(parents=True)
    records = [{"index": i, "correct": c, "think_tokens": t, "output": output} for i, (t, c) in
               enumerate(zip(tokens, correct))]
    (folder / "prediction.json").write_text(json.dumps(records))
    (folder / "metrics.json").write_text(json.dumps({"n": len(records)}))


def test_one_resumable_eval_step_per_model(tmp_path):
    cfg = _config(tmp_path, "--model", "first=m/fixed", "--model", "second=m/sft", "--ratios", "0.2,1.0")
    steps = build_steps(cfg)
    assert [s.name for s in steps] == ["eval-first", "eval-second"]
    assert [s.serve for s in steps] == ["m/fixed", "m/sft"]
    assert steps[0].argv[steps[0].argv.index("--ratios") + 1] == "0.2,1.0"
    assert steps[1].argv[steps[1].argv.index("--output_dir") + 1] == str(tmp_path / "out" / "second")
    assert steps[0].check() is not None  # nothing evaluated yet
    for r in ("0.2", "1.0"):
        _write_run(tmp_path / "out" / "first" / DATASET / r, [1, 2, 3, 4], [True] * 4)
    assert steps[0].check() is None and steps[1].check() is not None


def test_table_realized_ratio_is_against_the_models_own_1_0(tmp_path):
    cfg = _config(tmp_path, "--model", "a=m/a", "--ratios", "0.2,1.0,policy")
    root = tmp_path / "out" / "a" / DATASET
    _write_run(root / "0.2", [10, 10, 20, 20], [True, False, False, False])
    _write_run(root / "1.0", [60, 60, 60, 60], [True, True, False, False], "<COMP_100>\n<think>x</think>")
    _write_run(root / "policy", [10, 60, 10, 60], [True, True, True, False], "<COMP_40>\n<think>x</think>")
    record = table(cfg)
    runs = record["models"]["a"]["runs"]
    assert record["n_items"] == 4
    assert runs["0.2"]["realized_ratio"] == 0.25 and runs["1.0"]["realized_ratio"] == 1.0
    assert runs["0.2"]["accuracy"] == 0.25 and runs["policy"]["chosen"] == {"0.4": 1.0}
    text = render(record)
    assert "a | 0.2 | 15.0 [" in text and "| 0.25 | 25.0 [" in text and "{'0.4': 1.0}" in text


@pytest.mark.parametrize(("argv", "message"), [([], "at least one --model"),
                                               (["--model", "nodir"], "NAME=MODEL_DIR"),
                                               (["--model", "a=x", "--model", "a=y"], "must differ")])
def test_bad_options_are_named(tmp_path, capsys, argv, message):
    data = tmp_path / "val.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "#### 1", "grade": 1}) + "\n")
    assert main(["--data", str(data), "--out", str(tmp_path / "o"), *argv, "--list"]) == 2
    assert message in capsys.readouterr().err
