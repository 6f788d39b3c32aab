"""The frontier measure (extra_cot.study.frontier, extra_cot.stats.interpolate): hand-computed cases."""

from __future__ import annotations

import pytest

from extra_cot.evalsummary import Columns, per_question
from extra_cot.stats import interpolate
from extra_cot.study import frontier as fr

#: (think tokens, accuracy) of the five fixed ratios, as a record lists them: 0.4 thinks less than 0.2 here.
POINTS = {"0.2": (30.0, 0.5), "0.4": (20.0, 0.4), "0.6": (60.0, 0.7), "0.8": (80.0, 0.7), "1.0": (100.0, 0.8)}


@pytest.mark.parametrize(("x", "y"), [(20.0, 0.4), (25.0, 0.45), (45.0, 0.6), (57.0, 0.68), (90.0, 0.75),
                                      (10.0, 0.4), (120.0, 0.8), (80.0, 0.7)])
def test_interpolate_is_linear_between_neighbours_by_tokens_and_flat_outside(x, y):
    assert interpolate(list(POINTS.values()), x) == pytest.approx(y)


def test_interpolate_edge_cases():
    assert interpolate([(5.0, 0.3)], 1.0) == 0.3 and interpolate([(5.0, 0.3)], 9.0) == 0.3
    assert interpolate([(5.0, 0.3), (5.0, 0.5)], 5.0) in (0.3, 0.5)
    with pytest.raises(ValueError):
        interpolate([], 1.0)


def _columns(tokens: float, acc: float, n: int = 20) -> Columns:
    """n questions whose mean think tokens and accuracy are exactly ``tokens`` and ``acc``."""
    k = round(acc * n)
    return [1.0] * k + [0.0] * (n - k), [tokens] * n


def _fixed(n: int = 20) -> dict[str, Columns]:
    return {r: _columns(t, a, n) for r, (t, a) in POINTS.items()}


def test_frontier_gap_is_the_policy_minus_the_interpolated_frontier_at_its_tokens():
    got = fr.frontier_gap(_fixed(), _columns(45.0, 0.75), n_boot=200)
    assert got["frontier_accuracy"] == pytest.approx(0.6) and got["value"] == pytest.approx(0.15)
    assert got["think_tokens"] == 45.0 and got["ci"][0] <= 0.15 <= got["ci"][1]
    on = fr.frontier_gap(_fixed(), _columns(60.0, 0.7), n_boot=200)  # a fixed ratio lies on the frontier
    assert on["value"] == pytest.approx(0.0)
    assert fr.frontier_gap(_fixed(), _columns(45.0, 0.75), n_boot=200) == got  # seeded


def test_the_paired_bootstrap_resamples_questions_jointly():
    """Every run answers the same questions; a policy that is right exactly where the frontier's runs
    are right, at the tokens of 0.6, is on the frontier in every resample (interval [0, 0])."""
    n = 40
    correct = [float(i % 3 == 0) for i in range(n)]
    fixed = {r: (correct, [t] * n) for r, (t, _) in POINTS.items()}
    got = fr.frontier_gap(fixed, (correct, [60.0] * n), n_boot=300)
    assert got["value"] == 0.0 and got["ci"] == [0.0, 0.0]  # independent resampling would spread it
    better = fr.frontier_gap(_fixed(100), _columns(45.0, 0.85, 100), n_boot=300)
    assert better["ci"][0] > 0


def test_gap_difference_is_paired_over_questions():
    """CHRPO's gap minus the SFT model's: a run against itself is exactly 0 in every resample; a run right on
    more questions at the same tokens is above, with its interval above 0; mismatched lengths are refused."""
    n = 60
    sft = ([float(i % 2 == 0) for i in range(n)], [45.0] * n)
    same = fr.gap_difference(_fixed(n), sft, sft, n_boot=200)
    assert same == {"value": 0.0, "ci": [0.0, 0.0]}
    better = ([float(i % 2 == 0 or i % 3 == 0) for i in range(n)], [45.0] * n)  # right on a superset
    got = fr.gap_difference(_fixed(n), better, sft, n_boot=300)
    assert got["value"] == pytest.approx(10 / 60, abs=1e-4) and got["ci"][0] > 0
    assert fr.gap_difference(_fixed(n), sft, better, n_boot=300)["ci"][1] < 0
    with pytest.raises(ValueError, match="same non-empty questions"):
        fr.gap_difference(_fixed(n), sft, _columns(45.0, 0.5, n - 1))


def test_per_question_averages_samples_and_names_a_missing_index():
    records = [{"index": 1, "correct": True, "think_tokens": 10}, {"index": 0, "correct": False, "think_tokens": 4},
               {"index": 1, "correct": False, "think_tokens": 20}]
    assert per_question(records, 2) == ([0.0, 0.5], [4.0, 15.0])
    with pytest.raises(ValueError, match=r"question index \[2\]"):
        per_question(records, 3)
    with pytest.raises(ValueError, match="same non-empty questions"):
        fr.frontier_gap(_fixed(20), _columns(45.0, 0.5, 10))


def test_per_question_refuses_a_string_verdict_and_a_stray_index():
    """A string ``"False"`` would count as right under bool(); an index past n would land nowhere."""
    with pytest.raises(TypeError, match=r"index 0: 'correct' is 'False'"):
        per_question([{"index": 0, "correct": "False", "think_tokens": 3}], 1)
    with pytest.raises(ValueError, match="record index 1 outside the 1 questions"):
        per_question([{"index": 0, "correct": True, "think_tokens": 3}, {"index": 1, "correct": True, "think_tokens": 3}], 1)


def test_within_3_points_at_60pct_tokens():
    full = {"accuracy": 0.80, "think_tokens": 100.0}
    assert fr.within_points({"accuracy": 0.77, "think_tokens": 60.0}, full)["met"]
    assert not fr.within_points({"accuracy": 0.76, "think_tokens": 50.0}, full)["met"]
    assert not fr.within_points({"accuracy": 0.80, "think_tokens": 61.0}, full)["met"]
    assert fr.within_points({"accuracy": 0.77, "think_tokens": 60.0}, full)["value"] == {
        "accuracy_below_1.0": 0.03, "think_token_share": 0.6}


def test_the_oracle_chooses_each_grades_lowest_ratio_within_3_points_and_reuses_the_runs():
    val = {"0.2": {"1": 0.90, "4": 0.10}, "0.4": {"1": 0.95, "4": 0.50}, "0.6": {"1": 0.9, "4": 0.77},
           "0.8": {"1": 0.9, "4": 0.79}, "1.0": {"1": 0.93, "4": 0.80}}
    chosen = fr.oracle_choice(val)
    assert chosen == {"1": "0.2", "4": "0.6"}
    grades = [1, 4, 4, 1]
    records = {r: [{"index": i, "correct": r == "0.6", "think_tokens": float(r) * 100} for i in range(4)]
               for r in POINTS}
    picked = fr.oracle_records(records, grades, chosen)
    assert sorted((p["index"], p["think_tokens"]) for p in picked) == [(0, 20.0), (1, 60.0), (2, 60.0), (3, 20.0)]
    assert fr.realized_share(0.05, 0.1) == 0.5 and fr.realized_share(0.05, 0.0) is None


def _budget_records(n: int = 20) -> tuple[dict, list[int]]:
    """Grades 1 and 4 alternate; every run thinks ratio x 100 tokens. Grade 1: one question of ten is wrong
    below 1.0 (90 %, 100 % at 1.0); grade 4: right exactly at 0.6 and above."""
    grades = [1, 4] * (n // 2)
    records = {r: [{"index": i, "think_tokens": float(r) * 100, "output": "",
                    "correct": (r == "1.0" or i != 0) if grades[i] == 1 else float(r) >= 0.6} for i in range(n)]
               for r in POINTS}
    return records, grades


def test_the_max_gap_oracle_takes_the_assignment_furthest_above_the_frontier():
    records, grades = _budget_records()
    # accuracy by ratio 0.45 / 0.45 / 0.95 / 0.95 / 1.0 at 20 … 100 tokens. {1: 0.2, 4: 0.6} thinks 40 tokens at
    # 0.95, where the frontier is 0.45 (the 0.4 point): gap +0.5, the largest of the 25 assignments
    assert fr.oracle_gap_choice(records, grades) == {"1": "0.2", "4": "0.6"}
    picked = per_question(fr.oracle_records(records, grades, {"1": "0.2", "4": "0.6"}), len(grades))
    fixed = {r: per_question(recs, len(grades)) for r, recs in records.items()}
    assert fr.gap_at(fixed, picked, range(len(grades)))[0] == pytest.approx(0.5)
    # the 3-point rule reads grade 1's one wrong question as 10 points under 1.0 and pays the full budget there
    val = {r: {"1": 0.9 if r != "1.0" else 1.0, "4": 1.0 if float(r) >= 0.6 else 0.0} for r in POINTS}
    assert fr.oracle_choice(val) == {"1": "1.0", "4": "0.6"}
    # a tie in gap goes to fewer think tokens: one grade, every ratio exactly on the frontier (gap 0)
    flat = {r: [{"index": 0, "think_tokens": float(r) * 100, "output": "", "correct": True}] for r in POINTS}
    assert fr.oracle_gap_choice(flat, [2]) == {"2": "0.2"}


def test_report_frontier_targets_add_the_oracle_run_and_the_two_targets():
    from extra_cot.study.report import frontier_targets, run_summary

    n, grades = 20, [1, 4] * 10
    records = {r: [{"index": i, "correct": i < round(a * n), "think_tokens": t, "output": ""} for i in range(n)]
               for r, (t, a) in POINTS.items()}
    records["policy"] = [{"index": i, "correct": i < 15, "think_tokens": 45.0, "output": "<COMP_40>"} for i in range(n)]
    runs = {name: run_summary(recs, grades) for name, recs in records.items()}
    block, targets = frontier_targets(records, grades, runs, {"1": "0.2", "4": "1.0"})
    assert block["policy"]["value"] == pytest.approx(0.15) and targets["policy_above_frontier"]["value"] == block[
        "policy"]["value"]
    assert targets["policy_above_frontier"]["met"] is (block["policy"]["ci"][0] > 0)
    assert targets["policy_within_3_points_at_60pct_tokens"]["met"] is False  # 0.75 vs 0.8 at 45 %
    oracle = runs["oracle_by_grade"]
    assert oracle["chosen"] == {"1": "0.2", "4": "1.0"} and oracle["think_tokens"] == pytest.approx(65.0)
    assert block["oracle_by_grade"]["value"] == pytest.approx(oracle["accuracy"] - interpolate(list(POINTS.values()), 65.0))
    assert "oracle_by_grade_max_gap" not in runs and "oracle_by_grade_max_gap" not in block
    block, _ = frontier_targets(records, grades, runs, {"1": "0.2", "4": "1.0"}, {"1": "0.2", "4": "0.6"})
    gap = runs["oracle_by_grade_max_gap"]
    assert gap["chosen"] == {"1": "0.2", "4": "0.6"} and gap["think_tokens"] == pytest.approx(45.0)
    assert block["oracle_by_grade_max_gap"]["value"] == pytest.approx(gap["accuracy"] - interpolate(list(POINTS.values()), 45.0))
    assert block["policy_share_of_max_gap_oracle_gain"] == fr.realized_share(
        block["policy"]["value"], block["oracle_by_grade_max_gap"]["value"])


def test_the_report_renders_the_new_blocks_and_old_records_without_them():
    import json
    from pathlib import Path

    from extra_cot.study.report import render

    old = json.loads((Path(__file__).parents[2] / "results" / "study_varied.json").read_text())
    text = render(old)  # a record written before issue 36 renders as before
    assert "Level-0" not in text and "Positive control" not in text and "frontier" not in text
    record = {**old, "task": "chains", "stage1_chain_kept": {"0.2": {"1": 1.0, "6": 0.0}, "0.6": {"1": 1.0, "6": 0.95}},
              "positive_control": {"sweep_accuracy": {"0.2": {"1": 0.9}}, "n_questions": 200, "samples": 4,
                                   "gain": 0.31, "gain_p": 0.0005, "gain_slope": 0.06, "gain_slope_p": 0.001},
              "frontier": {"interpolation": "plain", "points": {}, "policy": {"value": 0.05, "ci": [0.01, 0.09],
                                                                               "think_tokens": 40.0, "frontier_accuracy": 0.6},
                           "oracle_by_grade": None, "policy_share_of_oracle_gain": None}}
    lines = render(record).splitlines()
    assert "Task: `chains` (extra_cot.tasks)" in lines
    assert "0.2 | 100.0 | 0.0" in lines and "0.6 | 100.0 | 95.0" in lines
    assert any("gain +0.31 (p = 0.0005)" in x and "slope over grade +0.06 (p = 0.001)" in x for x in lines)
    assert any(x.startswith("- policy: +0.05 [+0.0100, +0.0900] above the frontier (0.6)") for x in lines)
