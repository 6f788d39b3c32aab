"""The study's statistics: intervals, γ* from a sweep, per-grade accounting, targets (pure, fast)."""

from __future__ import annotations

import json
import math

import pytest

from extra_cot.gamma import null_test
from extra_cot.stats import bootstrap_mean, bootstrap_mean_diff, overlaps, permutation_p, wilson
from extra_cot.study.gamma import targets as gamma_targets
from extra_cot.study.report import (
    chosen_ratio,
    compute_targets,
    format_rise,
    mean_ratio,
    ratio_rise,
    rises,
    run_summary,
)


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775),
                                                  (10, 10, 0.7225, 1.0), (160, 200, 0.7391, 0.8495)])
def test_wilson_matches_published_values(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_rejects_impossible_counts_and_handles_empty():
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_bootstrap_interval_covers_the_mean_narrows_with_n_and_is_seeded():
    small = [float(x % 7) for x in range(20)]
    large = small * 20
    lo_s, hi_s = bootstrap_mean(small, seed=1)
    lo_l, hi_l = bootstrap_mean(large, seed=1)
    mean = sum(small) / len(small)
    assert lo_s < mean < hi_s and lo_l < mean < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3  # sqrt(20) ~ 4.5 times narrower
    assert bootstrap_mean(small, seed=1) == (lo_s, hi_s)
    assert bootstrap_mean([4.0] * 5) == (4.0, 4.0)
    assert overlaps((0, 1), (1, 2)) and not overlaps((0, 1), (1.5, 2))


def _rec(index, correct, output="", think=10, question=None):
    return {"index": index, "correct": correct, "output": output, "think_tokens": think,
            "question": question or f"q{index}", "gold": "1"}


def test_gamma_is_the_lowest_ratio_of_the_passing_run_ending_at_1_and_counts_grades():
    # q0 passes everywhere -> 0.2; q1 fails at 0.6 only -> 0.8 (0.4 passing below a failure does not count);
    # q2 fails at 1.0 -> no target; q3 passes from 0.6 up -> 0.6
    passes = {0: {0.2, 0.4, 0.6, 0.8, 1.0}, 1: {0.2, 0.4, 0.8, 1.0}, 2: {0.2, 0.4, 0.6, 0.8}, 3: {0.6, 0.8, 1.0}}
    sweep = {r: [_rec(i, r in ok) for i, ok in passes.items()] for r in (0.2, 0.4, 0.6, 0.8, 1.0)}
    rows, summary = gamma_targets(sweep, grades=[1, 3, 4, 3])
    assert [(r["question"], r["gt_ratio"], r["grade"]) for r in rows] == [("q0", 0.2, 1), ("q1", 0.8, 3), ("q3", 0.6, 3)]
    assert summary["distribution"] == {"0.2": 1, "0.6": 1, "0.8": 1}
    assert summary["by_grade"] == {"1": {"0.2": 1}, "3": {"0.6": 1, "0.8": 1}}
    assert summary["mean_by_grade"] == {"1": 0.2, "3": 0.7}
    assert summary["dropped_no_pass_by_grade"] == {"4": 1}
    assert summary["unsolved_labelled_by_grade"] == {}


def test_unsolved_questions_get_the_largest_budget_only_when_asked_and_only_when_nothing_passes():
    # q0 passes nowhere; q1 passes at 0.2 only (fails at 1.0: no γ* under either rule); q2 from 0.8 up
    passes = {0: set(), 1: {0.2}, 2: {0.8, 1.0}}
    sweep = {r: [_rec(i, r in ok) for i, ok in passes.items()] for r in (0.2, 0.4, 0.6, 0.8, 1.0)}
    rows, summary = gamma_targets(sweep, grades=[4, 2, 1])
    assert [(r["question"], r["gt_ratio"]) for r in rows] == [("q2", 0.8)]
    assert summary["dropped_no_pass_by_grade"] == {"2": 1, "4": 1}
    rows, summary = gamma_targets(sweep, grades=[4, 2, 1], unsolved=1.0)
    assert [(r["question"], r["gt_ratio"], r["grade"]) for r in rows] == [("q0", 1.0, 4), ("q2", 0.8, 1)]
    assert summary["dropped_no_pass_by_grade"] == {"2": 1}
    assert summary["unsolved_labelled_by_grade"] == {"4": 1}
    assert summary["mean_by_grade"] == {"1": 0.8, "4": 1.0}


def test_permutation_p_counts_draws_at_least_as_extreme_and_the_observation():
    assert permutation_p([0.0, 1.0, 2.0, 3.0], 3.0) == pytest.approx(2 / 5)
    assert permutation_p([0.0, 1.0, 2.0, 3.0], 4.0) == pytest.approx(1 / 5)  # never 0
    assert permutation_p([-3.0, -1.0, 0.0, 2.0], -2.5, two_sided=True) == pytest.approx(2 / 5)
    assert permutation_p([-3.0, -1.0, 0.0, 2.0], -2.5) == pytest.approx(4 / 5)
    with pytest.raises(ValueError):
        permutation_p([], 1.0)


#: Per-sample accuracy by grade of a simulated sweep: harder questions are solved less often.
_SOLVE = {1: 0.8, 2: 0.5, 3: 0.25, 4: 0.1}
_RATIOS = (0.2, 0.4, 0.6, 0.8, 1.0)


def _simulated_sweep(seed: int, needs: dict[int, float] | None, n: int = 240, k: int = 2):
    """(flags, grades) of a pass@k sweep. ``needs=None``: the ratio does not matter, a sample is right
    with the grade's ``_SOLVE`` rate; else grade -> the lowest ratio that solves the question (right
    90 % of the time from there up, 5 % below)."""
    import random

    rng, flags, grades = random.Random(seed), {}, []
    for i in range(n):
        grade = 1 + i % 4
        grades.append(grade)
        flags[i] = {r: [rng.random() < (_SOLVE[grade] if needs is None else 0.9 if r >= needs[grade] else 0.05)
                        for _ in range(k)] for r in _RATIOS}
    return flags, grades


def test_the_null_test_calls_a_gamma_that_rises_by_chance_noise():
    """Where the ratio does not matter, pass@2 still gives γ* that rise with the grade (hard questions
    rarely pass at every ratio, so their run of passes starts high): the null test must say so."""
    ps = []
    for seed in range(4):
        flags, grades = _simulated_sweep(seed, needs=None)
        _, summary = gamma_targets({r: [{"index": i, "question": f"q{i}", "gold": "1", "correct": f[r][j]}
                                        for i, f in flags.items() for j in range(2)] for r in _RATIOS}, grades)
        means = summary["mean_by_grade"]
        assert means["4"] > means["1"] + 0.2  # the rise is there ...
        null = null_test(flags, grades, rounds=300, seed=seed)
        assert null["mean_by_grade"] == pytest.approx({g: float(v) for g, v in means.items()}, abs=1e-4)
        # ... chance alone gives it (the observed means sit inside the null's ranges) ...
        assert all(lo <= means[g] <= hi for g, (lo, hi) in null["mean_by_grade_null_ci"].items())
        ps += [null["gain"]["p"], null["gain_slope"]["p"]]
        assert null["gain"]["null_ci"][0] < 0 < null["gain"]["null_ci"][1]
    assert sum(p < 0.05 for p in ps) <= 1 and sorted(ps)[1] > 0.1  # ... and neither test finds a ratio effect


def test_the_null_test_finds_gamma_that_follows_the_ratio():
    """Where hard questions need a high ratio, 1.0 beats 0.2 and more so on hard grades, beyond the null."""
    flags, grades = _simulated_sweep(0, needs={1: 0.2, 2: 0.4, 3: 0.6, 4: 0.8})
    null = null_test(flags, grades, rounds=300, seed=0)
    gain, slope = null["gain"], null["gain_slope"]
    assert gain["value"] > gain["null_ci"][1] and gain["p"] < 0.01
    assert slope["value"] > slope["null_ci"][1] and slope["p"] < 0.01
    assert null["sweep_accuracy_by_ratio"]["1"] - null["sweep_accuracy_by_ratio"]["0.2"] == pytest.approx(gain["value"])
    assert null == null_test(flags, grades, rounds=300, seed=0)  # seeded
    flags[0].pop(0.4)
    with pytest.raises(ValueError, match="every ratio"):
        null_test(flags, grades, rounds=10)


def _rising_sweep(seed: int, hard_rises: bool, n: int = 200, k: int = 4):
    """(flags, grades): easy grades (1, 2) right 80 % of the time at every ratio; hard grades (4, 6)
    right from 10 % at 0.2 to 90 % at 1.0 (linear in the ratio) when ``hard_rises``, else 50 % flat."""
    import random

    rng, flags, grades = random.Random(seed), {}, []
    for i in range(n):
        grade = (1, 2, 4, 6)[i % 4]
        grades.append(grade)
        flags[i] = {r: [rng.random() < (0.8 if grade <= 2 else 0.1 + (r - 0.2) if hard_rises else 0.5)
                        for _ in range(k)] for r in _RATIOS}
    return flags, grades


def test_the_trend_is_a_least_squares_slope_over_all_five_ratios():
    from extra_cot.gamma import _trend

    # per-ratio accuracy 0, 0, 0, 1, 1: slope 0.6 / 0.4 = 1.5 per unit ratio, x 0.8 = 1.2 (the ends alone: 1.0)
    assert _trend({r: [r >= 0.8] for r in _RATIOS}) == pytest.approx(1.2)
    assert _trend({r: [True, False] for r in _RATIOS}) == pytest.approx(0.0)
    assert _trend({0.2: [True], 0.4: [False], 0.6: [False], 0.8: [False], 1.0: [True]}) == pytest.approx(0.0)


def test_the_positive_control_finds_a_budget_that_pays_only_on_hard_grades():
    from extra_cot.gamma import positive_control

    flags, grades = _rising_sweep(0, hard_rises=True)
    pc = positive_control(flags, grades, null_test(flags, grades, rounds=300, seed=0))
    assert pc["gain_p"] < 0.01 and pc["gain_slope_p"] < 0.01
    assert pc["gain"] == pytest.approx(0.4, abs=0.08)  # half the questions gain 0.8
    assert pc["n_questions"] == 200 and pc["samples"] == 4 and pc["rounds"] == 300
    assert set(pc["sweep_accuracy"]) == {"0.2", "0.4", "0.6", "0.8", "1.0"}
    acc = pc["sweep_accuracy"]
    assert acc["0.2"]["6"] < 0.25 and acc["1.0"]["6"] > 0.75 and abs(acc["1.0"]["1"] - acc["0.2"]["1"]) < 0.15
    hard = pc["hardest_at_full"]
    assert (hard["grade"], hard["ratio"], hard["n_questions"], hard["accuracy"]) == (6, "1.0", 50, acc["1.0"]["6"])
    lo, hi = hard["ci"]
    assert lo < hard["accuracy"] < hi and 0.03 < hi - lo < 0.25


def test_the_hardest_grade_interval_resamples_questions_not_samples():
    """Four samples of one question move together: a grade whose questions are all-right or all-wrong
    has a wider interval than the same accuracy spread evenly over its questions."""
    from extra_cot.gamma import _hardest_at_full

    grades = [6] * 40
    clustered = {i: {1.0: [i % 5 != 0] * 4} for i in range(40)}  # 80 %: 32 questions all right, 8 all wrong
    spread = {i: {1.0: [True, True, True, i % 5 == 0]} for i in range(40)}  # 80 %: 32 questions 3 of 4, 8 all right
    a, b = _hardest_at_full(clustered, grades), _hardest_at_full(spread, grades)
    assert a["accuracy"] == b["accuracy"] == 0.8 and a["n_questions"] == b["n_questions"] == 40
    assert (a["ci"][1] - a["ci"][0]) > 1.5 * (b["ci"][1] - b["ci"][0])
    assert _hardest_at_full({0: {1.0: [True]}, 1: {1.0: [False]}}, [1, 2])["grade"] == 2


def test_the_positive_control_calls_a_flat_sweep_flat():
    from extra_cot.gamma import positive_control

    ps = []
    for seed in range(3):
        flags, grades = _rising_sweep(seed, hard_rises=False)
        pc = positive_control(flags, grades, null_test(flags, grades, rounds=300, seed=seed))
        ps += [pc["gain_p"], pc["gain_slope_p"]]
        assert abs(pc["gain"]) < 0.06
    assert sum(p < 0.01 for p in ps) <= 1 and sorted(ps)[1] > 0.05, ps  # uniform under the null: one low p may happen


def test_the_gamma_step_writes_its_null_test_unless_told_not_to(tmp_path):
    from extra_cot.study.gamma import main

    flags, grades = _simulated_sweep(1, needs=None, n=40)
    for r in _RATIOS:
        folder = tmp_path / "sweep" / f"{r:.1f}"
        folder.mkdir(parents=True)
        folder.joinpath("prediction.json").write_text(json.dumps(
            [{"index": i, "sample": j, "question": f"q{i}", "gold": "1", "correct": f[r][j]}
             for i, f in flags.items() for j in range(2)]))
    data = tmp_path / "policy.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "#### 1", "grade": g}) + "\n"
                            for i, g in enumerate(grades)))
    out = tmp_path / "targets.jsonl"
    argv = ["--sweep", str(tmp_path / "sweep"), "--data", str(data), "--out", str(out), "--null-rounds", "50"]
    assert main(argv) == 0
    summary = json.loads(out.with_name("targets.jsonl.summary.json").read_text())
    null = summary["null"]
    assert null["rounds"] == 50 and null == null_test(flags, grades, rounds=50, seed=0)
    assert summary["positive_control"]["gain_p"] == null["trend_gain"]["p"]
    assert main([*argv[:-1], "0"]) == 0
    assert "null" not in json.loads(out.with_name("targets.jsonl.summary.json").read_text())
    with pytest.raises(SystemExit):
        main([*argv[:-1], "-1"])


def test_run_summary_accounts_per_grade_and_chosen_ratio():
    records = [_rec(0, True, "<COMP_20>\n<think>\na</think>", 10), _rec(1, False, "<COMP_60><think>b</think>", 30),
               _rec(2, True, "  <COMP_100>\n<think>c</think>", 50), _rec(3, True, "no token", 0)]
    out = run_summary(records, grades=[1, 2, 2, 1])
    assert out["n"] == 4 and out["accuracy"] == 0.75 and out["think_tokens"] == 22.5
    assert out["by_grade"]["1"]["accuracy"] == 1.0 and out["by_grade"]["2"]["accuracy"] == 0.5
    assert out["by_grade"]["2"]["think_tokens"] == 40.0
    assert out["chosen"] == {"0.2": 0.25, "0.6": 0.25, "1.0": 0.25, "none": 0.25}
    assert out["chosen_by_grade"]["1"] == {"0.2": 0.5, "none": 0.5}
    assert out["mean_chosen_ratio_by_grade"] == {"1": 0.2, "2": 0.8}
    lo, hi = out["accuracy_ci"]
    assert lo < 0.75 < hi
    assert out["chosen_ratio_rise"]["value"] == pytest.approx(0.6)  # grade 2 (0.6, 1.0) minus grade 1 (0.2)
    assert chosen_ratio({"output": "<COMP_AUTO> x"}) == "auto"
    assert mean_ratio({"none": 1.0}) is None


def test_mean_difference_interval_has_the_sign_of_the_difference_and_holds_zero_for_equal_groups():
    low, high = [0.2] * 30 + [0.4] * 10, [0.8] * 30 + [0.6] * 10
    lo, hi = bootstrap_mean_diff(low, high, seed=3)
    assert 0.4 < lo <= hi < 0.6  # true difference 0.5, far from 0
    lo, hi = bootstrap_mean_diff(high, low, seed=3)
    assert -0.6 < lo <= hi < -0.4
    mixed = [0.2, 0.8] * 20
    lo, hi = bootstrap_mean_diff(mixed, mixed[::-1], seed=3)
    assert lo < 0 < hi
    assert bootstrap_mean_diff([0.2] * 5, [0.2] * 9) == pytest.approx((0.0, 0.0), abs=1e-12)
    with pytest.raises(ValueError):
        bootstrap_mean_diff([], [0.2])


def test_ratio_rise_compares_the_hardest_with_the_easiest_grade_over_fixed_ratio_outputs():
    def rows(*outputs):
        return [{"output": o} for o in outputs]
    by_grade = {"1": rows(*["<COMP_20> a"] * 20, "no token"), "2": rows("<COMP_100> b"),
                "3": rows(*["<COMP_80> c"] * 15, *["<COMP_60> d"] * 5, "<COMP_AUTO> e")}
    rise = ratio_rise(by_grade)
    assert (rise["easiest"], rise["hardest"]) == ("1", "3")  # by grade number, not by insertion or text
    assert rise["value"] == pytest.approx(0.55) and rise["ci"][0] > 0.4
    assert format_rise(rise).startswith("+0.550 [")
    flat = {"1": rows("<COMP_20> a", "<COMP_80> b") * 10, "10": rows("<COMP_80> b", "<COMP_20> a") * 10}
    assert ratio_rise(flat)["ci"][0] < 0 < ratio_rise(flat)["ci"][1]
    assert ratio_rise({"1": rows("none"), "2": rows("<COMP_20> a")}) is None
    assert ratio_rise({"1": rows("<COMP_20> a")}) is None
    assert format_rise(None) == "-"


@pytest.mark.parametrize(("values", "expected"), [([0.2, 0.4, 0.6], True), ([0.2, 0.2, 0.4], True),
                                                  ([0.4, 0.2, 0.6], False), ([0.4, 0.4], False), ([0.2], False),
                                                  ([0.2, None, 0.6], True)])
def test_rises(values, expected):
    assert rises(values) is expected


def _run(acc, tokens, chosen=None, by_grade=None, echo=1.0):
    return {"accuracy": acc, "think_tokens": tokens, "chosen": chosen or {}, "echo_fidelity": echo,
            "mean_chosen_ratio_by_grade": by_grade or {}, "realized_ratio": None}


def _runs(policy_acc=0.6, policy_tokens=40.0, chosen=None, by_grade=None):
    runs = {r: _run(a, t) for r, a, t in (("0.2", 0.5, 20.0), ("0.4", 0.55, 40.0), ("0.6", 0.6, 60.0),
                                          ("0.8", 0.6, 80.0), ("1.0", 0.62, 100.0))}
    for name, run in runs.items():
        run["realized_ratio"] = run["think_tokens"] / 100.0
        del name
    runs["policy"] = _run(policy_acc, policy_tokens, chosen or {"0.2": 0.5, "0.4": 0.3, "0.8": 0.2},
                          by_grade or {"1": 0.2, "2": 0.4, "3": 0.6}, echo=None)
    return runs


def test_targets_met_and_missed():
    traces = {"spread": 4.0, "top_sentence_share": 0.03, "grades": {"1": 5, "2": 5, "3": 5, "4": 5}}
    gamma = {"distribution": {"0.2": 3, "0.4": 2, "0.8": 1}, "mean_by_grade": {"1": 0.2, "2": 0.5}}
    t = compute_targets(_runs(), traces, gamma)
    assert t["retention_at_0.2"]["value"] == pytest.approx(0.5 / 0.62, abs=1e-4) and t["retention_at_0.2"]["met"]
    assert t["policy_accuracy_within_5_points_of_1.0"]["met"] and t["policy_think_tokens_share_of_1.0"]["met"]
    assert t["policy_distinct_tokens"]["value"] == ["0.2", "0.4", "0.8"] and t["policy_distinct_tokens"]["met"]
    assert t["policy_ratio_rises_with_grade"]["met"]
    # 0.6 / 40 tokens = 15 per 1k, but 0.2 gives 0.5 / 20 = 25 per 1k: the policy does not beat every ratio
    assert not t["policy_accuracy_per_token_beats_every_fixed_ratio"]["met"]
    assert t["realized_ratio_steps"]["met"] and t["echo_fidelity"]["met"]
    assert "gamma_rises_with_grade" not in t  # issue 36: pass@k meets it by chance
    assert "trace_spread" in t and "trace_spread" not in compute_targets(_runs(), traces, gamma, task="chains")
    worse = compute_targets(_runs(policy_acc=0.5, policy_tokens=70.0, chosen={"0.2": 0.97, "0.4": 0.03},
                                  by_grade={"1": 0.4, "2": 0.2}), traces, gamma)
    for name in ("policy_accuracy_within_5_points_of_1.0", "policy_think_tokens_share_of_1.0",
                 "policy_distinct_tokens", "policy_ratio_rises_with_grade"):
        assert not worse[name]["met"], name
    json.dumps(t)  # the record is JSON


def test_study_only_data_writes_the_training_traces(tmp_path):
    from extra_cot.study.__main__ import main

    out = tmp_path / "s"
    assert main(["--seed", "11", "--out", str(out), "--only", "data", "--n-sft", "30", "--n-policy", "20",
                 "--n-val", "10", "--n-test", "12"]) == 0
    rows = [json.loads(x) for x in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and all({"question", "response", "grade"} <= set(r) for r in rows)
    assert all(r["response"].startswith("<think>\n") and "</think>" in r["response"] for r in rows)
    test = [json.loads(x) for x in (out / "data" / "test.jsonl").read_text().splitlines()]
    questions = {r["question"] for r in rows} | {json.loads(x)["question"] for x in
                                                 (out / "data" / "policy.jsonl").read_text().splitlines()}
    assert len(test) == 12 and not questions & {r["question"] for r in test}


def _train_args(cfg) -> dict[str, dict[str, str]]:
    from extra_cot.study.steps import build_steps

    return {s.name: dict(a.split("=", 1) for a in s.argv if "=" in a and not a.startswith("--"))
            for s in build_steps(cfg) if s.name.startswith("train-")}


@pytest.mark.parametrize(("schedule", "repeat"), [("compute", 3), ("updates", 5), ("epochs", 1)])
def test_the_no_control_baseline_has_the_method_schedule(tmp_path, schedule, repeat):
    """Same start model, lr/batch and passes; only the data differ (no tokens, full traces). The baseline
    has one row per question against the method's one row per fixed ratio: under ``updates`` it runs 5x
    the epochs (the same optimizer steps), under ``compute`` (the default) 0.2+0.4+0.6+0.8+1.0 = 3x,
    about the think tokens of the method's rows, which hold ``ratio`` of a full trace each."""
    from extra_cot.study.config import StudyConfig
    from extra_cot.tokens import FIXED_RATIOS

    assert StudyConfig().baseline_schedule == "compute"
    cfg = StudyConfig(out=str(tmp_path), epochs=3.0, epochs_second=1.5, learning_rate=2e-4, baseline_schedule=schedule)
    train = _train_args(cfg)
    method, baseline = (train["train-fixed"], train["train-policy"]), (train["train-no-control-first"],
                                                                       train["train-no-control"])
    for ours, theirs in zip(method, baseline, strict=True):
        for key in ("learning_rate", "per_device_train_batch_size", "cutoff_len"):
            assert ours[key] == theirs[key], key
        assert float(theirs["num_train_epochs"]) == float(ours["num_train_epochs"]) * repeat
    assert method[0]["model_name_or_path"] == baseline[0]["model_name_or_path"]  # both start from the ctrl model
    assert method[1]["model_name_or_path"] == method[0]["output_dir"]
    assert baseline[1]["model_name_or_path"] == baseline[0]["output_dir"]
    assert [m["num_train_epochs"] for m in method] == ["3", "1.5"]
    assert baseline[0]["num_train_epochs"] == f"{3 * repeat:g}"  # printed plainly, no float noise
    assert len(FIXED_RATIOS) == 5
    # 40 questions: the method's first pass has 200 rows, the baseline's 40 -> equal steps under "updates"
    rows_method, rows_baseline, batch = 40 * len(FIXED_RATIOS), 40, cfg.batch_size
    steps = [math.ceil(rows / batch) * float(args["num_train_epochs"])
             for rows, args in ((rows_method, method[0]), (rows_baseline, baseline[0]))]
    assert (steps[0] == steps[1]) == (schedule == "updates")
    # think tokens seen per question: sum of the ratios for the method, repeat x 1.0 for the baseline
    assert (sum(FIXED_RATIOS) == pytest.approx(repeat)) == (schedule == "compute")


def test_stage2_precision_reads_the_recorded_training_commands():
    from extra_cot.demo.steps import precision_overrides
    from extra_cot.study.report import stage2_precision

    bf16 = "llamafactory-cli train x.yaml learning_rate=0.0005 bf16=true use_cpu=true"
    fp32 = "llamafactory-cli train x.yaml learning_rate=0.0005"
    # what the study's training steps actually append, per --precision
    assert stage2_precision([" ".join(["llamafactory-cli", "train", *precision_overrides("bf16")])]) == "bf16"
    assert stage2_precision([" ".join(["llamafactory-cli", "train", *precision_overrides("fp32")])]) == "fp32"
    assert stage2_precision([bf16, bf16]) == "bf16"
    assert stage2_precision([fp32, fp32]) == "fp32"
    assert stage2_precision([fp32, bf16]) == "mixed"
    assert stage2_precision([]) is None
    assert stage2_precision(["llamafactory-cli train x.yaml bf16=true_not"]) == "fp32"


@pytest.mark.parametrize(("wall_s", "precision", "met"), [
    (5999.0, "fp32", True), (6001.0, "fp32", False), (3000.0, "bf16", False), (3000.0, None, False),
    (3000.0, "mixed", False)])
def test_the_time_target_needs_fp32_and_100_minutes(wall_s, precision, met):
    from extra_cot.study.report import time_target

    target = time_target(wall_s, precision)
    assert target["met"] is met
    assert target["value"] == {"minutes": round(wall_s / 60, 1), "stage2_precision": precision}


def test_optimizer_steps_reads_each_trainings_global_step(tmp_path):
    from extra_cot.study.report import optimizer_steps

    for i, name in enumerate(("fixed", "sft", "no_control_first")):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "trainer_state.json").write_text(json.dumps({"global_step": 10 * (i + 1)}))
    assert optimizer_steps(tmp_path) == {"fixed": 10, "sft": 20, "no_control_first": 30, "no_control": None}


def test_the_rendered_record_names_steps_it_did_not_run():
    """A folder resumed from another run's outputs must say so in its markdown (never look like one run)."""
    from pathlib import Path

    from extra_cot.study.report import render

    record = json.loads((Path(__file__).parents[2] / "results" / "study_varied.json").read_text())
    assert "not produced by the invocation" not in render(record)  # the record ran every step
    record["step_wall_s"] = {**record["step_wall_s"], "train-fixed": None, "sweep": None}
    line = next(x for x in render(record).splitlines() if "not produced by the invocation" in x)
    assert "['train-fixed', 'sweep']" in line
    record["gamma"].pop("null", None)  # a record written before the null test renders without it
    assert "ratio-shuffled null (python -m extra_cot.study.gamma): -" in render(record)


def test_the_rendered_record_reports_the_gamma_null_test():
    from pathlib import Path

    from extra_cot.study.report import render

    record = json.loads((Path(__file__).parents[2] / "results" / "study_varied.json").read_text())
    flags, grades = _simulated_sweep(2, needs=None, n=40)
    record["gamma"]["null"] = null_test(flags, grades, rounds=20)
    line = next(x for x in render(record).splitlines() if "ratio-shuffled null" in x)
    s = record["gamma"]["null"]["gain_slope"]
    assert f"its slope over grade {s['value']:+} (null 95 % {s['null_ci']}, p = {s['p']})" in line
    assert "20 rounds" in line


@pytest.mark.parametrize(("share", "flag"), [("method", ["--policy-share", "method"]), ("0.3", ["--policy-share", "0.3"]),
                                             ("none", [])])
def test_the_policy_rows_share_reaches_the_second_pass_build(tmp_path, share, flag):
    from extra_cot.study.config import StudyConfig
    from extra_cot.study.steps import build_steps

    assert StudyConfig().policy_share == "method"
    steps = {s.name: s.argv for s in build_steps(StudyConfig(out=str(tmp_path), policy_share=share))}
    policy = steps["build-policy"]
    assert (policy[policy.index("--policy-share"):policy.index("--policy-share") + 2] if flag else
            [a for a in policy if a == "--policy-share"]) == flag
    assert all("--policy-share" not in argv for name, argv in steps.items() if name != "build-policy")


@pytest.mark.parametrize("task", ["varied", "chains"])
def test_every_build_sft_step_skips_rows_over_the_training_cutoff(tmp_path, task):
    """build-sft gets the cutoff the training uses, so a row over it is skipped with a logged reason
    (``<name>.skipped.jsonl``, cleaned with the step) instead of being truncated by LLaMA-Factory."""
    from extra_cot.study.config import StudyConfig
    from extra_cot.study.steps import build_steps

    cfg = StudyConfig(out=str(tmp_path), task=task)
    steps = build_steps(cfg)
    builds = [s for s in steps if "build-sft" in s.argv]
    assert len(builds) == (6 if task == "chains" else 4)  # chains adds the blind alternative's two
    cutoffs = {args["cutoff_len"] for args in _train_args(cfg).values()}
    assert cutoffs == {str(cfg.cutoff_len)}
    for step in builds:
        assert step.argv[step.argv.index("--cutoff-len") + 1] == str(cfg.cutoff_len), step.name
        assert any(str(c).endswith(".skipped.jsonl") for c in step.clean), step.name


@pytest.mark.parametrize("bad", ["0", "1", "abc", "-0.2"])
def test_a_policy_share_outside_0_1_is_refused_naming_the_flag(tmp_path, bad):
    from extra_cot.study.config import config_from_args, parser

    with pytest.raises(ValueError, match="--policy-share"):
        config_from_args(parser().parse_args(["--policy-share", bad, "--out", str(tmp_path)]))


@pytest.mark.parametrize("unsolved", ["drop", "1.0"])
def test_the_unsolved_rule_reaches_the_gamma_step(tmp_path, unsolved):
    from extra_cot.study.config import StudyConfig
    from extra_cot.study.steps import build_steps

    argv = {s.name: s.argv for s in build_steps(StudyConfig(out=str(tmp_path), unsolved=unsolved))}["gamma"]
    assert argv[argv.index("--unsolved") + 1] == unsolved


@pytest.mark.parametrize(("task", "name"), [("chains", "study"), ("varied", "study_varied")])
def test_the_record_in_results_is_named_by_its_task(tmp_path, monkeypatch, task, name):
    """`--results`: chains writes the study's record (study.*), varied its own (study_varied.*); the run folder keeps study.*."""
    from extra_cot.study import report

    monkeypatch.setattr(report, "build_record", lambda root: {"task": task})
    monkeypatch.setattr(report, "render", lambda record: f"# {record['task']}\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "results").mkdir()
    assert report.main(["--out", str(tmp_path / "run"), "--results", str(tmp_path / "results")]) == 0
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [f"{name}.json", f"{name}.md"]
    assert json.loads((tmp_path / "results" / f"{name}.json").read_text()) == {"task": task}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["study.json", "study.md"]


def test_a_pass_counts_only_from_a_sample_within_its_budget():
    """q0's one correct 0.2 sample wrote the whole chain (90 of 100 think tokens at 1.0): plain pass@k calls
    0.2 enough, the budget rule does not (γ* 0.4, from a 0.4 sample of 45 <= (0.4 + 0.1) x 100 tokens).
    q1's correct 0.2 sample stayed at 25 <= 30 tokens: 0.2 under both rules. A long 1.0 sample always counts."""
    from extra_cot.rl.rl_data import aggregate

    think = {0: {0.2: 90, 0.4: 45, 0.6: 60, 0.8: 80, 1.0: 100}, 1: {0.2: 25, 0.4: 40, 0.6: 60, 0.8: 80, 1.0: 100}}
    sweep = {r: [_rec(i, True, think=t[r]) for i, t in think.items()] for r in (0.2, 0.4, 0.6, 0.8, 1.0)}
    sweep[1.0].append(_rec(0, True, think=100))  # a second sample: the mean (ref_full_len) stays 100
    rows, summary = gamma_targets(sweep, grades=[4, 1], budget_tolerance=0.1)
    assert [(r["question"], r["gt_ratio"]) for r in rows] == [("q0", 0.4), ("q1", 0.2)]
    assert summary["budget_tolerance"] == 0.1
    assert summary["distribution_plain"] == {"0.2": 2}
    assert summary["over_budget_by_grade"] == {"1": 0, "4": 1}
    rows, summary = gamma_targets(sweep, grades=[4, 1])
    assert [(r["question"], r["gt_ratio"]) for r in rows] == [("q0", 0.2), ("q1", 0.2)]
    assert summary["budget_tolerance"] is None
    # the bound is (r + τ) x ref: 30 tokens pass 0.2 at τ = 0.1, 31 do not; at τ = 0 even 21 do not
    for tokens, tol, ok in ((30, 0.1, True), (31, 0.1, False), (21, 0.0, False), (20, 0.0, True)):
        stats = aggregate("t", {0.2: [_rec(0, True, think=tokens)], 1.0: [_rec(0, True, think=100)]}, tol)
        assert stats[0].passed[0.2] is ok, (tokens, tol)
        assert stats[0].passed[1.0] is True
    # a wrong sample within budget is no pass; a question without a correct 1.0 sample keeps plain pass@k
    stats = aggregate("t", {0.2: [_rec(0, False, think=10), _rec(0, True, think=90)], 1.0: [_rec(0, True, think=100)]}, 0.1)
    assert stats[0].passed[0.2] is False and stats[0].over_budget == 1
    stats = aggregate("t", {0.2: [_rec(0, True, think=90)], 1.0: [_rec(0, False, think=100)]}, 0.1)
    assert stats[0].passed == {0.2: True, 1.0: False}
    with pytest.raises(ValueError, match="budget tolerance must be >= 0"):
        aggregate("t", {0.2: [_rec(0, True)], 1.0: [_rec(0, True)]}, -0.1)


def test_gamma_targets_from_another_budget_rule_are_stale(tmp_path):
    from extra_cot.gamma import targets_stale

    path = tmp_path / "t.jsonl.summary.json"
    path.write_text(json.dumps({"n_targets": 3}))  # written before the rule existed
    assert "budget_tolerance" in targets_stale(path, 0.1)
    path.write_text(json.dumps({"budget_tolerance": 0.1}))
    assert targets_stale(path, 0.1) is None
    assert targets_stale(path, None) is not None


@pytest.mark.parametrize(("flag", "value", "argv"), [(None, 0.1, "0.1"), ("none", None, "none"), ("0.05", 0.05, "0.05")])
def test_the_budget_tolerance_reaches_the_gamma_step(tmp_path, flag, value, argv):
    from extra_cot.study.config import config_from_args, parser
    from extra_cot.study.steps import build_steps

    cfg = config_from_args(parser().parse_args(["--out", str(tmp_path), *(["--budget-tolerance", flag] if flag else [])]))
    assert cfg.budget_tolerance == value
    step = {s.name: s for s in build_steps(cfg)}["gamma"]
    assert step.argv[step.argv.index("--budget-tolerance") + 1] == argv
