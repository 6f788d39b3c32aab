"""extra_cot.study.chain_errors: each wrong chains answer gets the first category that explains it."""

from __future__ import annotations

import json

import pytest

from extra_cot.study.chain_errors import CATEGORIES, category, chain_lines, main
from extra_cot.tokens import FIXED_RATIOS, ratio_dir_name

GOLD = [(44, "-", 4, 40), (40, "+", 7, 47), (47, "-", 2, 45)]
ANSWER = "44 - 4 = <<44-4=40>>40\n40 + 7 = <<40+7=47>>47\n47 - 2 = <<47-2=45>>45\n#### 45"


def _response(lines: list[str], boxed: str = "45") -> str:
    body = "\n".join(["Let me follow the count.", *lines, "That is the last change."])
    return f"<think>\n{body}</think>\n\nThe answer is \\boxed{{{boxed}}}."


def test_chain_lines_reads_only_whole_equation_lines_of_the_reasoning():
    text = _response(["44 - 4 = 40", "so 40 + 7 = 47 books", "40+7=47", "  47 - 2 = 45  "])
    assert chain_lines(text) == [(44, "-", 4, 40), (40, "+", 7, 47), (47, "-", 2, 45)]
    assert chain_lines("<think>\nno numbers here</think>\n\\boxed{1}") == []


def test_reasoning_after_the_think_block_counts_too():
    """think_span's rule: lines outside the block are reasoning as well (a model cannot hide them)."""
    text = "<think>\nplan</think>\n44 - 4 = 40\n40 + 7 = 47\n47 - 2 = 45\nSo \\boxed{45}."
    assert len(chain_lines(text)) == 3


@pytest.mark.parametrize(("lines", "correct", "expected"), [
    pytest.param(GOLD, True, "correct", id="graded-right-wins"),
    pytest.param([], True, "correct", id="right-without-lines-is-still-right"),
    pytest.param([], False, "no_chain", id="no-lines"),
    pytest.param(GOLD[:2], False, "step_count", id="a-step-skipped"),
    pytest.param([*GOLD, (45, "+", 9, 50)], False, "step_count", id="a-step-invented-even-with-a-bad-sum"),
    pytest.param([GOLD[0], (40, "+", 7, 48), (48, "-", 2, 46)], False, "arithmetic", id="a-wrong-sum"),
    pytest.param([GOLD[0], (40, "-", 7, 33), (33, "-", 2, 31)], False, "step_read", id="a-sign-misread"),
    pytest.param([GOLD[0], (40, "+", 8, 48), (48, "-", 2, 46)], False, "step_read", id="an-amount-misread"),
    pytest.param([GOLD[0], (41, "+", 7, 48), (48, "-", 2, 46)], False, "carry", id="a-result-not-carried"),
    pytest.param([(43, "-", 4, 39), (39, "+", 7, 46), (46, "-", 2, 44)], False, "carry", id="a-wrong-start"),
    pytest.param(GOLD, False, "other", id="every-line-right-answer-wrong"),
])
def test_category(lines, correct, expected):
    assert category(lines, GOLD, correct) == expected


def _sweep(tmp_path, outputs: dict[float, list[tuple[int, str, bool]]]):
    sweep = tmp_path / "sweep"
    for ratio in FIXED_RATIOS:
        recs = [{"index": i, "output": out, "correct": ok} for i, out, ok in outputs.get(ratio, [])]
        (sweep / ratio_dir_name(ratio)).mkdir(parents=True)
        (sweep / ratio_dir_name(ratio) / "prediction.json").write_text(json.dumps(recs))
    return sweep


def test_main_writes_shares_per_ratio_and_grade(tmp_path, capsys):
    data = tmp_path / "policy.jsonl"
    rows = [{"question": "q0", "answer": ANSWER, "grade": 3},
            {"question": "q1", "answer": "5 + 2 = <<5+2=7>>7\n#### 7", "grade": 1}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    right, skipped = _response(["44 - 4 = 40", "40 + 7 = 47", "47 - 2 = 45"]), _response(["44 - 4 = 40"], "40")
    outputs = {r: [(0, right, True), (0, skipped, False), (1, _response(["5 + 2 = 7"], "7"), True)] for r in FIXED_RATIOS}
    outputs[0.2] = [(0, skipped, False), (0, skipped, False), (1, _response([], "9"), False)]
    out = tmp_path / "errors.json"
    assert main(["--sweep", str(_sweep(tmp_path, outputs)), "--data", str(data), "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["n"]["0.2"] == {"1": 1, "3": 2} and table["n"]["1.0"] == {"1": 1, "3": 2}
    assert table["share"]["0.2"]["3"]["step_count"] == 1.0 and table["share"]["0.2"]["1"]["no_chain"] == 1.0
    assert table["share"]["1.0"]["3"]["correct"] == 0.5 and table["share"]["1.0"]["3"]["step_count"] == 0.5
    assert all(set(by) == set(CATEGORIES) for r in table["share"].values() for by in r.values())
    assert "step_count" in capsys.readouterr().out


@pytest.mark.parametrize(("row", "field"), [
    ({"answer": ANSWER, "grade": "3"}, "grade"),
    ({"answer": ANSWER, "grade": True}, "grade"),
    ({"answer": "45", "grade": 3}, "answer"),
    ({"grade": 3}, "answer"),
])
def test_bad_data_names_file_line_and_field(tmp_path, capsys, row, field):
    data = tmp_path / "policy.jsonl"
    data.write_text(json.dumps({"answer": ANSWER, "grade": 1}) + "\n" + json.dumps(row) + "\n")
    assert main(["--sweep", str(_sweep(tmp_path, {})), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"{data}:2" in err and f"field '{field}'" in err


def test_a_record_outside_the_data_is_refused(tmp_path, capsys):
    data = tmp_path / "policy.jsonl"
    data.write_text(json.dumps({"answer": ANSWER, "grade": 1}) + "\n")
    sweep = _sweep(tmp_path, {0.4: [(3, _response([]), False)]})
    assert main(["--sweep", str(sweep), "--data", str(data)]) == 2
    assert "record index 3" in capsys.readouterr().err
