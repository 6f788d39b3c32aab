"""The CHRPO learning benchmark's accounting (issue 18): steps, per-grade choices, intervals, record shape."""

from __future__ import annotations

import json

import pytest

from extra_cot.stats import bootstrap_ratio
from extra_cot.study import learning
from extra_cot.study.learning import (
    LearningConfig,
    Paths,
    compute_targets,
    efficient,
    gamma_totals,
    held_out,
    settling,
    step_chunks,
    step_ratios,
    step_summary,
    train_argv,
)


def _reward(index, ratio, correct, gt=0.6, think=40, tier=None, score=None):
    tier = tier if tier is not None else (2 if correct else (1 if ratio >= 0 else 0))
    return {"kind": "reward", "split": "train", "index": index, "gt_ratio": gt, "ratio": float(ratio),
            "correct": float(correct), "tier": float(tier), "score": float(score if score is not None else tier),
            "think_tokens": float(think)}


def _step(step, ratios):
    return step_summary(step, [_reward(0, r, True) for r in ratios], [1])


def test_step_ratios_rebuild_each_rollout_and_drop_untagged_ones():
    s = _step(1, [0.2] * 5 + [0.6] * 2 + [-1.0])
    assert sorted(step_ratios(s)) == [0.2] * 5 + [0.6] * 2


def test_settling_sees_a_moving_curve_and_a_flat_one():
    # the choice climbs from 0.2 to 0.6 in steps 1-4, then stays: the last window does not move, the total move is +0.4
    steps = [_step(k + 1, [0.2] * (32 - 8 * k) + [0.6] * (8 * k)) for k in range(4)]
    steps += [_step(k + 5, [0.6] * 28 + [0.2] * 4) for k in range(4)]
    st = settling(steps)
    assert st["window_steps"] == 2 and st["settled"] is True
    assert st["last_minus_before"]["value"] == 0.0 and st["last_minus_before"]["ci"][0] <= 0 <= st["last_minus_before"]["ci"][1]
    assert st["last_minus_first"]["value"] == pytest.approx(0.6 - 0.05 - (0.2 + 0.05), abs=1e-3)
    assert st["last_minus_first"]["ci"][0] > 0
    # still climbing in the last window: not settled
    rising = [_step(k + 1, [0.2] * (32 - 4 * k) + [0.6] * (4 * k)) for k in range(8)]
    st = settling(rising)
    assert st["settled"] is False and st["last_minus_before"]["ci"][0] > 0
    assert settling(rising[:1]) is None


def test_step_chunks_cut_whole_steps_and_skip_validation_and_estimator_records():
    calls = [_reward(0, 0.2, 1)] * 8 + [{"kind": "estimator"}] + [dict(_reward(0, 0.2, 1), split="val")] * 3
    assert [len(c) for c in step_chunks(calls, 4)] == [4, 4]
    with pytest.raises(ValueError, match="whole number"):
        step_chunks(calls[:7], 4)


def test_step_summary_counts_choices_per_grade_and_the_efficient_share():
    grades = [1, 1, 4, 4]  # question index -> grade
    records = [
        _reward(0, 0.2, True, gt=0.2), _reward(1, 0.2, False, gt=0.4),   # grade 1: 0.2, 0.2
        _reward(2, 0.8, True, gt=0.8), _reward(3, 0.4, True, gt=0.8),    # grade 4: 0.8, 0.4
        _reward(2, -1.0, False, gt=0.8, tier=0),                          # grade 4: no token
        _reward(3, 1.0, True, gt=0.8),                                     # grade 4: above γ*
    ]
    s = step_summary(3, records, grades)
    assert s["step"] == 3 and s["rollouts"] == 6
    assert s["chosen"] == {"0.2": round(2 / 6, 4), "0.4": round(1 / 6, 4), "0.8": round(1 / 6, 4),
                           "1.0": round(1 / 6, 4), "none": round(1 / 6, 4)}
    assert s["chosen_by_grade"] == {"1": {"0.2": 1.0}, "4": {"0.4": 0.25, "0.8": 0.25, "1.0": 0.25, "none": 0.25}}
    assert s["mean_chosen_ratio_by_grade"] == {"1": 0.2, "4": round((0.4 + 0.8 + 1.0) / 3, 4)}
    # efficient: correct at ratio <= γ*: index 0 (0.2 <= 0.2), index 2 (0.8 <= 0.8), index 3 (0.4 <= 0.8)
    assert s["gamma_or_lower_correct"] == round(3 / 6, 4)
    assert s["correct"] == round(4 / 6, 4)
    assert s["tiers"] == {"0": round(1 / 6, 4), "1": round(1 / 6, 4), "2": round(4 / 6, 4)}
    assert s["think_tokens"] == 40.0
    # against γ*: the untagged rollout cannot be placed; at or above: index 0 (0.2 = γ*), 2 (0.8 = γ*), 3 (1.0 > 0.8)
    assert s["gamma_counts"] == {"placed": 5, "at_or_above": 3, "wrong_at_or_above": 0}


def test_gamma_totals_sum_the_steps_and_count_wrong_answers_at_or_above_gamma():
    one = step_summary(1, [_reward(0, 0.6, False, gt=0.4), _reward(0, 0.4, True, gt=0.4),
                           _reward(0, 0.2, False, gt=0.4), _reward(0, 0.8, True, gt=None)], [1])
    two = step_summary(2, [_reward(0, 1.0, False, gt=0.4), _reward(0, 0.2, True, gt=0.4)], [1])
    assert one["gamma_counts"] == {"placed": 3, "at_or_above": 2, "wrong_at_or_above": 1}
    assert gamma_totals([one, two]) == {"placed": 5, "at_or_above": 3, "wrong_at_or_above": 2, "at_or_above_share": 0.6}
    assert gamma_totals([step_summary(1, [_reward(0, -1.0, False)], [1])])["at_or_above_share"] is None


def test_efficient_needs_correct_a_ratio_and_a_gamma():
    assert efficient(_reward(0, 0.4, True, gt=0.4))
    assert not efficient(_reward(0, 0.6, True, gt=0.4))
    assert not efficient(_reward(0, 0.2, False, gt=0.4))
    assert not efficient(_reward(0, -1.0, True, gt=0.4))
    assert not efficient(_reward(0, 0.2, True, gt=None))


def test_step_summary_rejects_records_without_a_question_index():
    bad = _reward(0, 0.2, True)
    bad["index"] = None
    with pytest.raises(ValueError, match="index"):
        step_summary(1, [bad], [1])


def _pred(index, correct, think, token="<COMP_40>"):
    return {"index": index, "correct": correct, "think_tokens": think, "output": f"{token}<think>x</think> 1"}


def test_held_out_accuracy_per_token_and_its_paired_interval():
    grades = [1, 2] * 50
    records = [_pred(i, i % 2 == 0, 20 if i % 2 == 0 else 80) for i in range(100)]
    h = held_out(records, grades)
    assert h["accuracy"] == 0.5
    assert h["accuracy_per_1k"] == pytest.approx(1000 * 50 / (50 * 20 + 50 * 80))
    lo, hi = h["accuracy_per_1k_ci"]
    assert lo < h["accuracy_per_1k"] < hi
    assert h["chosen"] == {"0.4": 1.0} and h["mean_chosen_ratio_by_grade"] == {"1": 0.4, "2": 0.4}
    # paired: every item has the same ratio (tokens vary) -> a zero-width interval; resampling the
    # numerator and the denominator apart would not give this
    den = [float(10 + 7 * (i % 9)) for i in range(40)]
    assert bootstrap_ratio([0.1 * d for d in den], den) == pytest.approx((0.1, 0.1))
    wide = bootstrap_ratio([1.0, 0.0] * 10, [10.0, 10.0] * 10, seed=1)
    narrow = bootstrap_ratio([1.0, 0.0] * 250, [10.0, 10.0] * 250, seed=1)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3
    with pytest.raises(ValueError):
        bootstrap_ratio([1.0], [1.0, 2.0])


def _h(per_1k, ci, by_grade):
    return {"accuracy_per_1k": per_1k, "accuracy_per_1k_ci": ci, "mean_chosen_ratio_by_grade": by_grade}


def test_targets_need_non_overlapping_intervals_and_a_rising_ratio():
    sft = _h(7.0, [6.0, 8.0], {"1": 0.3, "2": 0.3})
    held = {"sft": sft, "chrpo": _h(9.5, [8.5, 10.5], {"1": 0.2, "2": 0.3, "3": 0.3, "4": 0.5}),
            "grpo": _h(7.9, [7.0, 8.8], {"1": 0.4, "2": 0.3, "3": 0.5, "4": 0.6})}
    t = compute_targets(held)
    assert t["chrpo_accuracy_per_token_beats_sft"]["met"] is True
    assert t["grpo_accuracy_per_token_beats_sft"]["met"] is False  # higher, but inside the noise
    assert t["chrpo_ratio_rises_with_grade"]["met"] is True
    assert t["grpo_ratio_rises_with_grade"]["met"] is False  # dips at grade 2
    worse = compute_targets({"sft": sft, "chrpo": _h(5.0, [4.0, 5.5], {"1": 0.2, "2": 0.4})})
    assert worse["chrpo_accuracy_per_token_beats_sft"]["met"] is False


def test_rl_questions_follow_every_study_split_and_are_new(tmp_path):
    from extra_cot.study.data import CONFIG_NAME, build_splits

    sizes = {"train": 12, "policy": 10, "val": 8, "test": 9}
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"seed": 3, **sizes}))
    rows = learning.rl_questions(tmp_path, 15)
    used = {r["question"] for split in build_splits(3, sizes).values() for r in split}
    assert len(rows) == 15 and not used & {r["question"] for r in rows}
    assert {r["grade"] for r in rows} <= {1, 2, 3, 4} and all("answer" in r for r in rows)
    # a chains study gets chains questions, after its own splits (issue 36)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"seed": 3, "task": "chains", **sizes}))
    chains = learning.rl_questions(tmp_path, 15)
    splits = build_splits(3, sizes, "chains")
    assert not {r["question"] for split in splits.values() for r in split} & {r["question"] for r in chains}
    from extra_cot.tasks import generate

    assert chains == [{"question": r["question"], "answer": r["answer"], "grade": r["grade"]}
                      for r in generate("chains", 39 + 15, seed=3)[39:]]


def test_the_two_arms_differ_only_in_the_estimator(tmp_path):
    cfg = LearningConfig(out=str(tmp_path / "run"), study=str(tmp_path / "study"))
    p = Paths(cfg)
    chrpo, grpo = train_argv(cfg, p, "chrpo"), train_argv(cfg, p, "grpo")
    differ = set(chrpo) ^ set(grpo)
    assert {a for a in differ if "train_chrpo" not in a and "train_grpo" not in a and "experiment_name" not in a} == {
        "algorithm.adv_estimator=grpo", f"algorithm.chrpo.control_token_weight={cfg.control_token_weight:g}"}
    with pytest.raises(ValueError, match="rollout-n"):
        LearningConfig(rollout_n=1)


def test_arms_and_the_safe_wrong_fraction_reach_the_steps_and_the_trainer(tmp_path):
    from extra_cot.study.learning import Paths, build_steps, train_argv

    cfg = LearningConfig(out=str(tmp_path / "run"), study=str(tmp_path / "study"), arms=["chrpo"],
                         safe_wrong_fraction=0.0)
    names = [s.name for s in build_steps(cfg)]
    assert [n for n in names if "grpo" in n and "chrpo" not in n] == []
    assert {"train-chrpo", "merge-chrpo", "eval-chrpo"} <= set(names)
    argv = train_argv(cfg, Paths(cfg), "chrpo")
    assert "reward.reward_kwargs.chrpo.safe_wrong_fraction=0" in argv
    # default: the preset's value, no override on the command line
    assert not any("safe_wrong_fraction" in a for a in train_argv(LearningConfig(), Paths(LearningConfig()), "grpo"))
    assert learning._arms("grpo, chrpo") == ["chrpo", "grpo"]
    for bad in ("ppo", ""):
        with pytest.raises(ValueError, match="--arms"):
            learning._arms(bad)
    with pytest.raises(ValueError, match="safe-wrong-fraction"):
        LearningConfig(safe_wrong_fraction=1.0)


def test_the_explore_step_gates_before_the_sweep(tmp_path):
    from extra_cot.study.learning import SFT_CHOICE, build_steps

    cfg = LearningConfig(out=str(tmp_path / "run"), study=str(tmp_path / "study"), min_explorable=0.1)
    steps = build_steps(cfg)
    names = [s.name for s in steps]
    assert names[:4] == ["data", "explore", "sweep", "eval-sft"]
    argv = steps[1].argv
    assert argv[argv.index("-m") + 1] == "extra_cot.study.choice"
    assert argv[argv.index("--min-explorable") + 1] == "0.1" and argv[argv.index("--out") + 1].endswith(SFT_CHOICE)
    with pytest.raises(ValueError, match="min-explorable"):
        LearningConfig(min_explorable=1.5)


def test_the_explore_step_is_done_only_when_its_file_passes_the_gate(tmp_path):
    """choice writes its file before exiting 3: a rerun must not take the file for a passed gate."""
    from extra_cot.study.learning import SFT_CHOICE, build_steps

    cfg = LearningConfig(out=str(tmp_path / "run"), study=str(tmp_path / "study"), min_explorable=0.1)
    explore = build_steps(cfg)[1]
    path = tmp_path / "run" / SFT_CHOICE
    assert "missing" in explore.check()
    path.parent.mkdir(parents=True, exist_ok=True)
    at = {"temperature": 0.7, "top_p": 0.9, "group_size": 4}
    path.write_text(json.dumps({**at, "explorable": 1.0, "group_varies": 0.0, "by_grade": {}}))
    assert "group_varies 0 < --min-explorable 0.1" in explore.check()
    path.write_text(json.dumps({**at, "explorable": 0.0, "group_varies": 0.1, "by_grade": {}}))
    assert explore.check() is None
    path.write_text(json.dumps({**at, "by_grade": {}}))
    assert "no numeric 'group_varies'" in explore.check()
    # a file read at other sampling settings is not this run's gate
    path.write_text(json.dumps({**at, "top_p": 1.0, "group_varies": 0.5, "by_grade": {}}))
    assert "the run samples at" in explore.check()
    hot = LearningConfig(out=str(tmp_path / "run"), study=str(tmp_path / "study"), rollout_temperature=1.0,
                         rollout_top_p=1.0, rollout_n=8)
    path.write_text(json.dumps({"temperature": 1.0, "top_p": 1.0, "group_size": 8, "group_varies": 0.2, "by_grade": {}}))
    assert build_steps(hot)[1].check() is None and "the run samples at" in explore.check()


def test_rollout_sampling_reaches_the_explore_step_and_both_arms(tmp_path):
    cfg = LearningConfig(out=str(tmp_path / "run"), study=str(tmp_path / "study"), rollout_temperature=1.0,
                         rollout_top_p=1.0, rollout_n=6)
    explore = learning.build_steps(cfg)[1].argv
    assert [explore[explore.index(f) + 1] for f in ("--temperature", "--top-p", "--group-size")] == ["1", "1", "6"]
    for arm in learning.ARMS:
        argv = learning.train_argv(cfg, learning.Paths(cfg), arm)
        assert "actor_rollout_ref.rollout.temperature=1" in argv and "actor_rollout_ref.rollout.top_p=1" in argv
    default = learning.train_argv(LearningConfig(), learning.Paths(LearningConfig()), "chrpo")
    assert "actor_rollout_ref.rollout.temperature=0.7" in default and "actor_rollout_ref.rollout.top_p=0.9" in default
    for bad in ({"rollout_temperature": 0}, {"rollout_top_p": 0}, {"rollout_top_p": 1.5}):
        with pytest.raises(ValueError, match="rollout"):
            LearningConfig(**bad)


def test_record_has_the_interface_checked_from_outside(tmp_path):
    """A synthetic run folder -> chrpo_learning.json with the issue's fields, markdown and a PNG."""
    study, root = tmp_path / "study", tmp_path / "run"
    (study / "data").mkdir(parents=True)
    (study / "data" / "test.jsonl").write_text("".join(json.dumps({"grade": 1 + i % 4}) + "\n" for i in range(8)))
    (study / "data" / "data_config.json").write_text(json.dumps({"seed": 0, "task": "chains"}))
    (root / "data").mkdir(parents=True)
    (root / "data" / "rl.jsonl").write_text("".join(json.dumps({"grade": 1 + i % 4}) + "\n" for i in range(4)))
    cfg = LearningConfig(out=str(root), study=str(study), steps=2, batch=2, rollout_n=2)
    (root / "learning_config.json").write_text(json.dumps(cfg.to_dict()))
    for arm in learning.ARMS:
        d = root / f"train_{arm}"
        d.mkdir()
        rows = [_reward(i % 4, 0.2 if i % 2 else 0.6, i % 3 == 0) for i in range(8)]  # 2 steps x 2 prompts x 2
        (d / "calls.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "data": {
            "actor/kl_loss": 0.001 * s, "timing_s/step": 10.0 + s, "timing_s/gen": 6.0}}) + "\n" for s in (1, 2)))
    for name in learning.MODELS:
        run = root / "eval" / name / "test" / "policy"
        run.mkdir(parents=True)
        (run / "prediction.json").write_text(json.dumps([_pred(i, i % 2 == 0, 30 + i) for i in range(8)]))
    rec = learning.write_report(root, tmp_path / "results")
    saved = json.loads((tmp_path / "results" / "chrpo_learning.json").read_text())
    assert saved["steps"] == 2 and {"command", "date", "commit", "dirty"} <= set(saved)
    for arm in learning.ARMS:
        steps = saved["arms"][arm]["per_step"]
        assert [s["step"] for s in steps] == [1, 2] and all({"reward_mean", "chosen"} <= set(s) for s in steps)
        assert steps[1]["kl_loss"] == 0.002 and steps[1]["timing_s"] == {"gen": 6.0, "step": 12.0}
    for h in [saved["sft"]["heldout"], *(saved["arms"][a]["heldout"] for a in learning.ARMS)]:
        assert {"accuracy", "accuracy_ci", "think_tokens", "think_tokens_ci", "chosen"} <= set(h)
        assert len(h["accuracy_ci"]) == 2 and len(h["think_tokens_ci"]) == 2
    assert (tmp_path / "results" / "chrpo_learning.png").stat().st_size > 1000
    assert "## Targets" in (tmp_path / "results" / "chrpo_learning.md").read_text()
    assert rec["arms"]["chrpo"]["timing"]["later_mean"] == {"gen": 6.0, "step": 12.0}
    assert saved["task"] == "chains" and "frontier_gap" not in saved["sft"]["heldout"]
    assert saved["sft"]["choice_on_rl"] is None  # no explore step output in this folder
    assert {"window_steps", "last_minus_before", "last_minus_first", "settled"} <= set(saved["arms"]["chrpo"]["settling"])
    assert "## Did the choice settle?" in (tmp_path / "results" / "chrpo_learning.md").read_text()
    # rollouts 0, 2, 4, 6 chose 0.6 = γ*; of those 2 and 4 are wrong (correct where i % 3 == 0)
    assert saved["arms"]["grpo"]["against_gamma"] == {"placed": 8, "at_or_above": 4, "wrong_at_or_above": 2,
                                                      "at_or_above_share": 0.5}
    assert "grpo | 8 | 4 | 50.0 % | 2" in (tmp_path / "results" / "chrpo_learning.md").read_text()
    assert "No frontier gap" in (tmp_path / "results" / "chrpo_learning.md").read_text()
    # a varied-task study's record keeps its own name in RESULTS; the run folder's copy is always chrpo_learning
    (study / "data" / "data_config.json").write_text(json.dumps({"seed": 0, "task": "varied"}))
    learning.write_report(root, tmp_path / "varied")
    assert sorted(p.name for p in (tmp_path / "varied").iterdir()) == [
        "chrpo_learning_varied.json", "chrpo_learning_varied.md", "chrpo_learning_varied.png"]
    assert json.loads((root / "chrpo_learning.json").read_text())["task"] == "varied"
    (study / "data" / "data_config.json").write_text(json.dumps({"seed": 0, "task": "chains"}))
    # with the study's own fixed-ratio runs on the split: each held-out model's frontier gap (issue 36)
    for k, ratio in enumerate(("0.2", "0.4", "0.6", "0.8", "1.0")):
        run = study / "eval" / "test" / ratio
        run.mkdir(parents=True)
        (run / "prediction.json").write_text(json.dumps([_pred(i, i < 2 * k, 10 + 10 * k) for i in range(8)]))
    (root / learning.SFT_CHOICE).write_text(json.dumps({
        "temperature": 0.7, "top_p": 0.9, "explorable": 0.0, "by_grade": {"1": {
            "n": 2, "probs": {"0.2": 1.0}, "sampled": {"0.2": 1.0}, "explorable": 0.0, "expected_ratio": 0.2}}}))
    rec = learning.write_report(root)
    assert rec["sft"]["choice_on_rl"]["explorable"] == 0.0 and "expected_ratio" not in rec["sft"]["choice_on_rl"]["by_grade"]["1"]
    assert "questions with two or more ratios in the nucleus: 0.0" in (root / "chrpo_learning.md").read_text()
    # every model: accuracy 0.5 at 33.5 think tokens; the fixed runs: accuracy 0 / .25 / .5 / .75 / 1 at 10 … 50
    # tokens, so the frontier there is 0.5 + 0.35 * 0.25 = 0.5875 and the gap -0.0875
    for h in [rec["sft"]["heldout"], *(rec["arms"][a]["heldout"] for a in learning.ARMS)]:
        assert h["frontier_gap"]["value"] == -0.0875 and h["frontier_gap"]["ci"][0] <= -0.0875 <= h["frontier_gap"]["ci"][1]
    # the arms answered exactly as the SFT model: their gap differences are 0 in every resample, not met
    for arm in learning.ARMS:
        target = rec["targets"][f"{arm}_above_sft_by_frontier"]
        assert target["value"] == 0.0 and target["ci"] == [0.0, 0.0] and target["met"] is False
