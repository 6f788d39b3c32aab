"""The demo's problem generator and data step: deterministic, correct, readable by the stages."""

from __future__ import annotations

import json
import re

import pytest

from extra_cot.demo import data as demo_data
from extra_cot.demo.problems import ProblemOptions, generate, to_gsm8k, to_trace

_ANNOT = re.compile(r"<<(\d+)([-+*])(\d+)=(\d+)>>")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def test_demo_problems_are_seeded_and_distinct():
    a, b = generate(50, seed=3), generate(50, seed=3)
    assert a == b
    assert generate(50, seed=4) != a
    assert len({r["question"] for r in a}) == 50


@pytest.mark.parametrize("seed", range(5))
def test_demo_problem_arithmetic_is_correct(seed):
    for row in generate(40, seed=seed, options=ProblemOptions(min_steps=1, max_steps=4)):
        steps = _ANNOT.findall(row["answer"])
        assert steps, row["answer"]
        for x, op, y, z in steps:
            assert _OPS[op](int(x), int(y)) == int(z), row["answer"]
            assert f"{x} {op} {y} = {z}" in row["cot"], (row["cot"], x, op, y, z)  # every equation is in the CoT
        final = row["answer"].rsplit("####", 1)[1].strip()
        assert final == row["gold"] == steps[-1][3]
        assert int(final) >= 0
        assert f"\\boxed{{{final}}}" in row["final"]


def test_demo_trace_length_follows_from_the_question():
    """Every equation is followed by exactly one filler line: no coin flip a model cannot learn."""
    from extra_cot.demo.problems import FILLERS

    for row in generate(60, seed=5):
        lines = row["cot"].split("\n")
        n_eq = len(_ANNOT.findall(row["answer"]))
        assert len(lines) == 2 + 2 * n_eq + 3, row["cot"]
        assert all(lines[3 + 2 * k] in FILLERS for k in range(n_eq)), row["cot"]


def test_demo_trace_rows_feed_compress_and_eval_readers():
    from extra_cot.compress.pipeline import read_response
    from extra_cot.eval.datasets import DatasetSpec, _gsm8k

    row = generate(1, seed=11)[0]
    src, skip = read_response(to_trace(row), "row 0")
    assert skip is None and src.gold == row["gold"] and src.cot == row["cot"]
    question, gold = _gsm8k(to_gsm8k(row), "row 0", DatasetSpec("arith", "x", "gsm8k"))
    assert (question, gold) == (row["question"], row["gold"])


def test_demo_data_step_writes_disjoint_splits(tmp_path):
    assert demo_data.main(["--out", str(tmp_path), "--sft", "12", "--rl", "4", "--test", "5", "--seed", "2"]) == 0
    rows = {name: [json.loads(l) for l in (tmp_path / name).read_text().splitlines()]
            for name in ("sft_source.jsonl", "rl.jsonl", "test.jsonl")}
    assert [len(v) for v in rows.values()] == [12, 4, 5]
    questions = [r["question"] for v in rows.values() for r in v]
    assert len(set(questions)) == len(questions)
    assert set(rows["sft_source.jsonl"][0]) == {"question", "response", "gold"}
    config = json.loads((tmp_path / "data_config.json").read_text())
    assert config["input_format"] == "responses" and config["counts"]["test.jsonl"] == 5


def test_demo_data_step_gsm8k_paths_and_bad_rows(tmp_path):
    train = tmp_path / "gsm8k_train.jsonl"
    test = tmp_path / "gsm8k_test.jsonl"
    rows = [{"question": f"q{i}?", "answer": f"2 + {i} = <<2+{i}={2 + i}>>{2 + i}\n#### {2 + i}"} for i in range(6)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    out = tmp_path / "out"
    assert demo_data.main(["--out", str(out), "--sft", "4", "--rl", "2", "--test", "2", "--gsm8k-train", str(train)]) == 0
    assert json.loads((out / "data_config.json").read_text())["input_format"] == "gsm8k"
    assert (out / "sft_source.jsonl").read_text().count("\n") == 4
    with pytest.raises(ValueError, match="needs 9"):
        demo_data.main(["--out", str(out), "--sft", "7", "--rl", "2", "--test", "2", "--gsm8k-train", str(train)])
    test.write_text(json.dumps({"question": "q", "answer": "no final line"}) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match=r"gsm8k_test.jsonl:1: GSM8K field 'answer' has no '####"):
        demo_data.main(["--out", str(out), "--sft", "4", "--rl", "2", "--test", "2", "--gsm8k-train", str(train)])
