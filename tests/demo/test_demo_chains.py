"""The demo on the budget-sensitive ``chains`` task (issue 36, item 7): its data, sizes, Stage 1 scorer,
and the summary's by-grade view with the budget check."""

from __future__ import annotations

import json

import pytest

from extra_cot.demo import data as demo_data
from extra_cot.demo.config import config_from_args, parser
from extra_cot.demo.steps import build_steps
from extra_cot.demo.summary import budget_check, main


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_chains_is_the_demo_default_with_its_own_grades(tmp_path):
    assert demo_data.main(["--out", str(tmp_path), "--sft", "30", "--rl", "5", "--test", "30", "--seed", "3"]) == 0
    config = json.loads((tmp_path / "data_config.json").read_text())
    assert config["task"] == "chains" and config["input_format"] == "responses"
    source, test = _rows(tmp_path / "sft_source.jsonl"), _rows(tmp_path / "test.jsonl")
    assert {r["grade"] for r in source + test} == {1, 2, 3}
    # a chains trace: one bare equation per step, and the GSM8K-format answer rides along
    for row in source:
        think = row["response"].split("</think>")[0]
        assert sum(" = " in line for line in think.splitlines()) == row["grade"] and "####" in row["answer"]
    assert demo_data.main(["--out", str(tmp_path / "b"), "--sft", "40", "--rl", "1", "--test", "1", "--max-steps",
                           "4", "--min-steps", "4"]) == 0
    assert {r["grade"] for r in _rows(tmp_path / "b" / "sft_source.jsonl")} == {4}
    with pytest.raises(ValueError, match="--max-factor: options of --task varied"):
        demo_data.main(["--out", str(tmp_path / "c"), "--max-factor", "7"])
    assert demo_data.main(["--out", str(tmp_path / "v"), "--task", "varied", "--sft", "20", "--rl", "1", "--test", "1"]) == 0
    assert {r["grade"] for r in _rows(tmp_path / "v" / "sft_source.jsonl")} == {1, 2}  # the earlier demo family


def test_task_sizes_fill_only_unset_flags(tmp_path):
    def cfg(*argv):
        return config_from_args(parser().parse_args(["--out", str(tmp_path), *argv]))

    chains, varied = cfg(), cfg("--task", "varied")
    assert (chains.task, chains.sft, chains.test, chains.epochs, chains.epochs_second) == ("chains", 180, 48, 1.0, 1.5)
    assert (varied.sft, varied.test, varied.epochs, varied.epochs_second) == (48, 32, 3.0, 2.0)
    assert (chains.learning_rate_second, varied.learning_rate_second) == (5e-5, 5e-4)  # varied: its record's
    assert cfg("--task", "varied", "--sft", "60", "--epochs", "2").sft == 60
    assert cfg("--task", "varied", "--epochs", "2").epochs == 2.0
    assert cfg("--tiny", "--task", "varied").sft == 8  # tiny sizes win over the task's
    by = {s.name: s for s in build_steps(chains)}
    assert by["data"].argv[-2:] == ["--task", "chains"]
    # chains traces are scored by the task's heuristic (as the study's Level-0 check); varied by the lm scorer
    assert by["compress"].argv[-2:] == ["--scorer", "heuristic"]
    assert "--scorer" not in {s.name: s for s in build_steps(varied)}["compress"].argv
    assert "chains=" in by["eval"].argv[by["eval"].argv.index("--dataset") + 1]


def _folder(root, correct_at):
    """Held-out grades 1 / 3 / 3 / 3 (question 0 is grade 1); two samples each; ``correct_at(ratio, index,
    sample)`` says which records are right."""
    (root / "data").mkdir(parents=True)
    grades = [1, 3, 3, 3]
    (root / "data" / "test.jsonl").write_text("".join(json.dumps({"question": f"q{i}", "answer": "#### 1", "grade": g})
                                                      + "\n" for i, g in enumerate(grades)))
    for ratio, tokens in (("0.2", 10.0), ("0.6", 30.0), ("1.0", 50.0)):
        (root / "eval" / "chains" / ratio).mkdir(parents=True)
        preds = [{"index": i, "sample": k, "correct": correct_at(ratio, i, k), "think_tokens": tokens + i,
                  "output": "x"} for i in range(4) for k in (0, 1)]
        (root / "eval" / "chains" / ratio / "prediction.json").write_text(json.dumps(preds))


def test_budget_check_reads_the_hardest_grade_paired_by_question(tmp_path):
    # grade 1 is right only at 0.2, grade 3 only at 1.0 (one of two samples of question 3 at 1.0 fails)
    def right(ratio, i, k):
        return (ratio == "0.2") if i == 0 else (ratio == "1.0" and not (i == 3 and k == 1))

    _folder(tmp_path, right)
    check = budget_check(tmp_path, "chains")
    assert check["grade"] == 3 and check["n_questions"] == 3
    assert (check["accuracy_0.2"], check["accuracy_1.0"]) == (0.0, round(2.5 / 3, 4))
    assert check["gain"] == round(2.5 / 3, 4) and check["ci"][0] > 0 and check["met"] is True
    flat = tmp_path / "flat"
    _folder(flat, lambda ratio, i, k: k == 0)  # the budget changes nothing
    check = budget_check(flat, "chains")
    assert check["gain"] == 0.0 and check["ci"] == [0.0, 0.0] and check["met"] is False
    assert budget_check(tmp_path / "none", "chains") is None


def test_summary_shows_accuracy_by_grade_and_the_budget_check(tmp_path):
    _folder(tmp_path, lambda ratio, i, k: ratio == "1.0" or i == 0)
    (tmp_path / "demo_config.json").write_text(json.dumps({"task": "chains", "sft": 8, "rl": 2, "test": 4}))
    for ratio in ("0.2", "0.6", "1.0"):
        (tmp_path / "eval" / "chains" / ratio / "metrics.json").write_text(json.dumps(
            {"n": 8, "tokens": 1.0, "acc_all": 0.5, "latency_s": 0.1, "closed_think_share": 1.0}))
    assert main(["--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "demo.json").read_text())
    assert record["runs"]["1.0"]["by_grade"]["3"]["accuracy"] == 1.0
    assert record["runs"]["0.2"]["by_grade"]["3"]["accuracy"] == 0.0 and record["runs"]["0.2"]["by_grade"]["1"]["n"] == 2
    assert record["checks"]["budget_pays"]["met"] is True
    md = (tmp_path / "summary.md").read_text()
    assert "## By grade (held out)" in md and "| 0.2 | 100.0 [" in md
    assert "Budget check, grade 3 (3 questions, paired by question): accuracy 100.0 % at 1.0 vs 0.0 % at 0.2" in md
