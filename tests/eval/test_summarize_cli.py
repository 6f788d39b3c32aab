"""``extra-cot summarize``: per-grade accuracy and think tokens of eval run folders, from the files alone."""

from __future__ import annotations

import json

import pytest

from extra_cot.cli import main as cli_main


def _run(tmp_path, records, name="0.4"):
    run = tmp_path / "eval" / "test" / name
    run.mkdir(parents=True)
    (run / "prediction.json").write_text(json.dumps(records))
    return run


def _grades(tmp_path, grades):
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": "#### 1", "grade": g}) + "\n"
                            for i, g in enumerate(grades)))
    return path


def _rec(i, correct, tokens, token="<COMP_40>"):
    return {"index": i, "correct": correct, "think_tokens": tokens, "output": f"{token}<think>x</think> 1"}


def test_per_grade_numbers_are_counted_from_the_records(tmp_path, capsys):
    grades = _grades(tmp_path, [1, 1, 1, 1, 2, 2])
    # grade 1: 3 of 4 right at 10, 20, 30, 40 tokens; grade 2: 0 of 2 right at 100, 200; one output chose 0.2
    recs = [_rec(0, True, 10), _rec(1, True, 20), _rec(2, True, 30), _rec(3, False, 40),
            _rec(4, False, 100, "<COMP_20>"), _rec(5, False, 200)]
    run = _run(tmp_path, recs)
    assert cli_main(["summarize", str(run), "--grades", str(grades), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)[str(run)]
    assert out["n"] == 6 and out["accuracy"] == pytest.approx(0.5)
    assert out["by_grade"]["1"]["accuracy"] == pytest.approx(0.75) and out["by_grade"]["1"]["think_tokens"] == 25
    assert out["by_grade"]["2"]["accuracy"] == 0 and out["by_grade"]["2"]["think_tokens"] == 150
    assert out["chosen_by_grade"]["2"] == {"0.2": 0.5, "0.4": 0.5}
    assert cli_main(["summarize", str(run), "--grades", str(grades)]) == 0
    md = capsys.readouterr().out
    assert "n 6: accuracy 50.0 %" in md and "\n1 | 4 | 75.0 [" in md and "| 25.0 |" in md


@pytest.mark.parametrize(("records", "needles"), [
    ([_rec(0, True, 5), _rec(7, True, 5)], ["prediction.json", "record 1", "index 7", "test.jsonl", "2 rows"]),
    ([{"index": 0, "correct": True}], ["prediction.json", "record 0", "'think_tokens'"]),
])
def test_records_that_do_not_fit_the_grades_file_are_one_line_naming_both(tmp_path, capsys, records, needles):
    grades = _grades(tmp_path, [1, 2])
    run = _run(tmp_path, records)
    assert cli_main(["summarize", str(run), "--grades", str(grades)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and all(n in err for n in needles), err


def test_a_grades_row_without_an_integer_grade_names_file_and_row(tmp_path, capsys):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"question": "q", "grade": 1}) + "\n" + json.dumps({"question": "q", "grade": "2"}) + "\n")
    run = _run(tmp_path, [_rec(0, True, 5)])
    assert cli_main(["summarize", str(run), "--grades", str(path)]) == 2
    err = capsys.readouterr().err
    assert "test.jsonl:2" in err and "'grade'" in err


def test_a_folder_without_predictions_is_named(tmp_path, capsys):
    grades = _grades(tmp_path, [1])
    assert cli_main(["summarize", str(tmp_path / "nowhere"), "--grades", str(grades)]) == 2
    assert "nowhere/prediction.json is missing" in capsys.readouterr().err
