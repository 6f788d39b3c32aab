"""Study step ``report``: ``OUT/study.json`` + ``OUT/study.md`` from one study folder.

``python -m extra_cot.study.report --out runs/study``
``python -m extra_cot.study.report --out runs/study --results results``  (the record:
``results/study.json`` + ``results/study.md``, the markdown rendered from the JSON)

Per run (``base`` = untuned SmolLM2, ``0.2`` … ``1.0``, ``policy`` = ``<COMP_AUTO>``, ``no_control``
= the baseline trained on full traces without tokens): accuracy with a Wilson 95 % interval,
mean think tokens with a bootstrap 95 % interval, realized ratio against the model's own 1.0
run and against the reference traces, per-grade accuracy, and for the policy the chosen ratios
overall and per grade. The targets of issue 17 are computed here and reported met or not.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from extra_cot.demo.runner import machine
from extra_cot.demo.steps import SWEEP_RATIOS
from extra_cot.evalsummary import (  # noqa: F401 (re-exported: the study's pieces read them here)
    NOT_A_RATIO,
    chosen_ratio,
    eval_records,
    link_realized,
    mean_ratio,
    per_question,
    ratio_key,
    ratio_rise,
    read_grades,
    run_metrics,
    run_summary,
)
from extra_cot.fileio import atomic_write_json, atomic_write_text, read_jsonl
from extra_cot.stats import overlaps
from extra_cot.study import alternatives as alt
from extra_cot.study.config import RECORD_NAME

FIXED = SWEEP_RATIOS  # the fixed-ratio run folders, 0.2 … 1.0 (one source: extra_cot.tokens.FIXED_RATIOS)
RUNS = ("base", *FIXED, "policy", "no_control")
#: Issue 17, item 4 (and the demo's control targets of issue 10, kept).
TARGETS = {"retention_at_0.2_min": 0.8, "policy_accuracy_gap_max": 0.05, "policy_token_share_max": 0.5,
           "policy_distinct_min": 3, "policy_distinct_share_min": 0.05, "echo_min": 0.9,
           "realized_step_min": 0.08, "accuracy_at_1.0_min": 0.3, "trace_spread_min": 3.0,
           "trace_top_sentence_max": 0.10, "grades_min": 4, "gamma_distinct_min": 3}
#: Issue 17, item 5: the whole study on 2 cores with Stage 2 in fp32 (no native bf16).
STUDY_MINUTES_MAX = 100.0


def rises(values: Sequence[float | None]) -> bool:
    """Non-decreasing across grades and strictly higher at the hardest than at the easiest."""
    vals = [v for v in values if v is not None]
    return len(vals) >= 2 and all(b >= a for a, b in pairwise(vals)) and vals[-1] > vals[0]


def _target(value, target, met: bool) -> dict:
    return {"value": value, "target": target, "met": bool(met)}


def compute_targets(runs: Mapping[str, dict], traces: Mapping, gamma: Mapping, task: str = "varied") -> dict[str, dict]:
    """Issue 17's targets, each ``{"value", "target", "met"}``; the trace-spread target is the varied
    task's (``chains`` keeps its words the same length at every grade by design)."""
    t, out = TARGETS, {}
    full, pol, low = runs["1.0"], runs["policy"], runs["0.2"]
    retention = low["accuracy"] / full["accuracy"] if full["accuracy"] else 0.0
    out["retention_at_0.2"] = _target(round(retention, 4), f">= {t['retention_at_0.2_min']}",
                                      retention >= t["retention_at_0.2_min"])
    gap = full["accuracy"] - pol["accuracy"]
    out["policy_accuracy_within_5_points_of_1.0"] = _target(round(gap, 4), f"<= {t['policy_accuracy_gap_max']}",
                                                           gap <= t["policy_accuracy_gap_max"])
    share = pol["think_tokens"] / full["think_tokens"] if full["think_tokens"] else float("inf")
    out["policy_think_tokens_share_of_1.0"] = _target(round(share, 4), f"<= {t['policy_token_share_max']}",
                                                     share <= t["policy_token_share_max"])
    distinct = sorted(k for k, v in pol["chosen"].items() if k not in NOT_A_RATIO
                      and v >= t["policy_distinct_share_min"])
    out["policy_distinct_tokens"] = _target(distinct, f">= {t['policy_distinct_min']} ratios each chosen >= "
                                            f"{t['policy_distinct_share_min']:.0%}", len(distinct) >= t["policy_distinct_min"])
    by_grade = pol["mean_chosen_ratio_by_grade"]
    out["policy_ratio_rises_with_grade"] = _target(by_grade, "non-decreasing, hardest > easiest",
                                                   rises([by_grade[g] for g in sorted(by_grade, key=int)]))
    per_token = {name: runs[name]["accuracy"] / runs[name]["think_tokens"] if runs[name]["think_tokens"] else 0.0
                 for name in (*FIXED, "policy")}
    beats = all(per_token["policy"] > per_token[r] for r in FIXED)
    out["policy_accuracy_per_token_beats_every_fixed_ratio"] = _target(
        {k: round(1000 * v, 3) for k, v in per_token.items()}, "policy > each fixed ratio (accuracy per 1k tokens)",
        beats)
    echo = {r: runs[r].get("echo_fidelity") for r in FIXED}
    out["echo_fidelity"] = _target(echo, f">= {t['echo_min']} at every fixed ratio",
                                   all((v or 0) >= t["echo_min"] for v in echo.values()))
    realized = [runs[r]["realized_ratio"] for r in FIXED]
    steps = None if None in realized else [round(b - a, 4) for a, b in pairwise(realized)]
    out["realized_ratio_steps"] = _target(steps, f"each >= {t['realized_step_min']}",
                                          steps is not None and all(s >= t["realized_step_min"] for s in steps))
    out["accuracy_at_1.0"] = _target(round(full["accuracy"], 4), f">= {t['accuracy_at_1.0_min']}",
                                     full["accuracy"] >= t["accuracy_at_1.0_min"])
    if task == "varied":
        out["trace_spread"] = _target(traces["spread"], f">= {t['trace_spread_min']}",
                                      traces["spread"] >= t["trace_spread_min"])
    out["trace_top_sentence_share"] = _target(traces["top_sentence_share"], f"<= {t['trace_top_sentence_max']}",
                                              traces["top_sentence_share"] <= t["trace_top_sentence_max"])
    out["difficulty_grades"] = _target(len(traces["grades"]), f">= {t['grades_min']}", len(traces["grades"]) >= t["grades_min"])
    out["gamma_distinct_ratios"] = _target(sorted(gamma["distribution"]), f">= {t['gamma_distinct_min']}",
                                           len(gamma["distribution"]) >= t["gamma_distinct_min"])
    # gamma_rises_with_grade is gone (issue 36): the null test showed pass@k meets it by chance
    return out


# --- reading a study folder ----------------------------------------------------------------------------------


def reference_tokens(traces_path: Path, tokenizer) -> list[int]:
    """Think tokens of the reference traces (the generator's full traces of the held-out items)."""
    from extra_cot.think import count_think_tokens

    return [count_think_tokens(row["response"], tokenizer) for _, row in read_jsonl(traces_path)]


def training_trace_stats(data_dir: Path, tokenizer) -> dict:
    """:func:`extra_cot.demo.problems.trace_stats` over the train + policy traces (think tokens)."""
    from extra_cot.demo.problems import trace_stats
    from extra_cot.think import count_think_tokens, split_think

    rows = [row for name in ("train.jsonl", "policy.jsonl") for _, row in read_jsonl(data_dir / name)]
    return trace_stats([split_think(r["response"])[0] or "" for r in rows],
                       [count_think_tokens(r["response"], tokenizer) for r in rows], [r["grade"] for r in rows])


def collect_runs(root: Path, split: str, grades: list[int], ref_mean: float) -> dict[str, dict]:
    """Every run's summary, linked: realized ratio vs the model's own 1.0 and vs the reference traces."""
    dirs = {name: root / "eval" / split / name for name in ("base", *FIXED, "policy")}
    dirs["no_control"] = root / "eval_no_control" / split / "base"
    runs = {}
    for name, run_dir in dirs.items():
        runs[name] = run_summary(eval_records(run_dir), grades)
        runs[name]["echo_fidelity"] = run_metrics(run_dir).get("echo_fidelity")
    link_realized(runs)
    for summary in runs.values():
        summary["realized_vs_reference"] = round(summary["think_tokens"] / ref_mean, 4) if ref_mean else None
    return runs


def _state(root: Path) -> dict:
    path = root / "demo_state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def split_record(root: Path, split: str, tokenizer, traces: Mapping, gamma: Mapping, task: str = "varied",
                 chosen: Mapping[str, str] | None = None, alternatives: Sequence[str] = (),
                 chosen_gap: Mapping[str, str] | None = None) -> dict:
    """Runs and targets of one held-out split; ``chosen`` / ``chosen_gap``: the oracle-by-grade ratios of
    the 3-point rule and of the largest frontier gap (both from validation);
    ``alternatives``: the study's ``--alternatives``, whose runs join ``runs`` (:mod:`extra_cot.study.alternatives`)."""
    grades = read_grades(root / "data" / f"{split}.jsonl")
    traces_path = root / "data" / f"{split}_traces.jsonl"
    refs = reference_tokens(traces_path, tokenizer) if traces_path.is_file() else []
    ref_mean = sum(refs) / len(refs) if refs else 0.0
    runs = collect_runs(root, split, grades, ref_mean)
    records = {name: eval_records(root / "eval" / split / name) for name in (*FIXED, "policy")}
    frontier, extra = frontier_targets(records, grades, runs, chosen, chosen_gap)
    alternatives = alt.add_runs(root, split, grades, alternatives, runs, records, ref_mean)
    return {"n": len(grades), "reference_think_tokens": round(ref_mean, 2) if refs else None, "runs": runs,
            "frontier": frontier, "targets": {**compute_targets(runs, traces, gamma, task), **extra},
            "alternatives": alternatives}


def frontier_targets(records: Mapping[str, Sequence[Mapping]], grades: Sequence[int], runs: dict[str, dict],
                     chosen: Mapping[str, str] | None, chosen_gap: Mapping[str, str] | None = None) -> tuple[dict, dict]:
    """(frontier block, targets) of issue 36 (:mod:`extra_cot.study.frontier`); adds the
    ``oracle_by_grade`` run to ``runs`` when ``chosen`` is given, and ``oracle_by_grade_max_gap`` when
    ``chosen_gap`` is (:func:`extra_cot.study.frontier.oracle_gap_choice`)."""
    from extra_cot.study import frontier as fr

    n = len(grades)
    fixed = {r: per_question(records[r], n) for r in FIXED}
    policy = fr.frontier_gap(fixed, per_question(records["policy"], n))
    block = {"interpolation": "plain (linear between neighbouring fixed ratios sorted by think tokens)",
             "points": {r: [round(runs[r]["think_tokens"], 2), round(runs[r]["accuracy"], 4)] for r in FIXED},
             "policy": policy, "oracle_by_grade": None, "policy_share_of_oracle_gain": None}
    own = runs.get("1.0", {}).get("think_tokens")
    for name, share, picks in (("oracle_by_grade", "policy_share_of_oracle_gain", chosen),
                               ("oracle_by_grade_max_gap", "policy_share_of_max_gap_oracle_gain", chosen_gap)):
        if not picks:
            continue
        picked = fr.oracle_records(records, grades, picks)
        runs[name] = {**run_summary(picked, grades), "chosen": dict(picks), "echo_fidelity": None,
                      "realized_ratio": None, "realized_vs_reference": None}
        runs[name]["realized_ratio"] = round(runs[name]["think_tokens"] / own, 4) if own else None
        block[name] = fr.frontier_gap(fixed, per_question(picked, n))
        block[share] = fr.realized_share(policy["value"], block[name]["value"])
    targets = {"policy_above_frontier": {"value": policy["value"], "ci": policy["ci"],
                                         "target": "> 0 with the 95 % interval above 0", "met": policy["ci"][0] > 0},
               "policy_within_3_points_at_60pct_tokens": fr.within_points(runs["policy"], runs["1.0"])}
    return block, targets


def stage2_precision(commands: Sequence[str]) -> str | None:
    """``bf16``/``fp32`` from the training commands the runner recorded (``mixed`` if they differ; None
    without any): bf16 where a command holds the flag :func:`extra_cot.demo.steps.precision_overrides` adds."""
    from extra_cot.demo.steps import precision_overrides

    flag = precision_overrides("bf16")[0]
    kinds = {"bf16" if flag in command.split() else "fp32" for command in commands}
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else None)


def time_target(total_wall_s: float, precision: str | None) -> dict:
    """Item 5: the study's wall time, met only when Stage 2 ran fp32 (a bf16 run does not show it)."""
    minutes = round(total_wall_s / 60, 1)
    return {"value": {"minutes": minutes, "stage2_precision": precision},
            "target": f"<= {STUDY_MINUTES_MAX:g} min with Stage 2 in fp32",
            "met": precision == "fp32" and total_wall_s <= 60 * STUDY_MINUTES_MAX}


def provenance(root: Path) -> dict:
    """Where a runner's record came from (``OUT/demo_state.json``): the first invocation's command, date
    and commit, every invocation, the machine, the load it ran under and the step wall times."""
    from extra_cot.demo.runner import code_version

    state = _state(root)
    invocations = state.get("invocations", [])
    loads = [x[1] for x in state.get("load_samples", [])]
    first = invocations[0] if invocations else {}
    return {
        "command": first.get("command"), "date": first.get("started"),
        "commit": (first.get("code") or {}).get("commit"), "dirty": (first.get("code") or {}).get("dirty"),
        "report_code": code_version(), "invocations": len(invocations),
        "invocation_log": [{k: inv.get(k) for k in ("command", "started", "code")} for inv in invocations],
        "machine": machine(),
        "load": {"mean": round(sum(loads) / len(loads), 2) if loads else None, "max": max(loads, default=None)},
        "step_wall_s": {k: v.get("wall_s") for k, v in state.get("steps", {}).items()},
        "total_wall_s": round(sum(v.get("wall_s") or 0 for v in state.get("steps", {}).values()), 1),
        "stage2_precision": stage2_precision([v["command"] for k, v in state.get("steps", {}).items()
                                              if k.startswith("train-") and v.get("command")]),
    }


def optimizer_steps(root: Path) -> dict[str, int | None]:
    """Optimizer updates each training took (``global_step`` of its ``trainer_state.json``; None if absent),
    keyed by model folder: shows whether the no-control baseline had as many updates as the method
    (``--baseline-schedule``)."""
    from extra_cot.study.config import StudyConfig
    from extra_cot.study.steps import Paths

    steps = {}
    for model in Paths(StudyConfig(out=str(root))).trainings:
        path = model / "trainer_state.json"
        steps[model.name] = json.loads(path.read_text()).get("global_step") if path.is_file() else None
    return steps


def build_record(root: Path) -> dict:
    """The whole record of one study folder (see module doc): ``runs``/``targets`` are the test
    split's (the record), ``splits`` holds every evaluated split (validation: for choosing options)."""
    from transformers import AutoTokenizer

    config = json.loads((root / "study_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(root / "models/base"))
    traces = training_trace_stats(root / "data", tokenizer)
    gamma = json.loads((root / "stage1" / "policy_targets.jsonl.summary.json").read_text())
    task = config.get("task", "varied")
    splits = {}
    for split in sorted(config["splits"], key=lambda s: s != "val"):  # validation first: it sets the oracle
        chosen = chosen_gap = None
        if split != "val" and "val" in splits:
            from extra_cot.study.frontier import oracle_choice, oracle_gap_choice

            val = splits["val"]["runs"]
            chosen = oracle_choice({r: {g: v["accuracy"] for g, v in val[r]["by_grade"].items()} for r in FIXED})
            chosen_gap = oracle_gap_choice({r: eval_records(root / "eval" / "val" / r) for r in FIXED},
                                           read_grades(root / "data" / "val.jsonl"))
        splits[split] = split_record(root, split, tokenizer, traces, gamma, task, chosen, config.get("alternatives", []),
                                     chosen_gap)
    main_split = "test" if "test" in splits else config["splits"][0]
    prov = provenance(root)
    targets = {**splits[main_split]["targets"],
               "study_minutes": time_target(prov["total_wall_s"], prov["stage2_precision"])}
    chain_kept = root / "stage1" / "train_chain_kept.json"
    kept = json.loads(chain_kept.read_text()) if chain_kept.is_file() else None
    if kept:
        targets["stage1_chain_kept"] = kept["check"]
    alternatives = {name: {**block, "minutes": alt.minutes(prov["step_wall_s"], name),
                           **({"optimizer_steps": alt.optimizer_steps(root)} if name == "blind" else {})}
                    for name, block in splits[main_split]["alternatives"].items()}
    return {
        **prov, "task": task, "seed": config["seed"], "split": main_split, "n_test": splits[main_split]["n"],
        "stage1_chain_kept": kept and kept["share"], "stage1_chain_kept_n": kept and kept["n"],
        "positive_control": gamma.get("positive_control"), "frontier": splits[main_split]["frontier"],
        "reference_think_tokens": splits[main_split]["reference_think_tokens"],
        "config": config, "optimizer_steps": optimizer_steps(root), "traces": traces, "gamma": gamma,
        "runs": splits[main_split]["runs"], "targets": targets, "splits": splits, "alternatives": alternatives,
        "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


# --- rendering ------------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _ci(ci: Sequence[float], scale: float = 100.0, spec: str = ".1f") -> str:
    return f"[{scale * ci[0]:{spec}}, {scale * ci[1]:{spec}}]"


def render(record: Mapping) -> str:
    """The markdown twin of ``study.json`` (rendered, never typed)."""
    runs, lines = record["runs"], []
    lines += [f"# Study record (seed {record['seed']}, {record['split']} split, n = {record['n_test']})", "",
              f"- command: `{record['command']}` ({record['invocations']} invocation(s))",
              *[f"  - invocation {i}: `{inv['command']}` at {inv['started']}, code {inv['code']}"
                for i, inv in enumerate(record["invocation_log"], 1)],
              (f"- date: {record['date']}; commit {record['commit']} (dirty: {record['dirty']}); report code "
               f"{record['report_code'].get('commit')}"),
              f"- machine: {record['machine']}; load mean {record['load']['mean']}, max {record['load']['max']}",
              (f"- step wall times (s): {record['step_wall_s']} (total {record['total_wall_s']} s; Stage 2 in "
               f"{record.get('stage2_precision')})"),
              *([f"- outputs already in the folder, not produced by the invocation(s) above: {inherited}"]
                if (inherited := [k for k, v in record["step_wall_s"].items() if v is None]) else []),
              (f"- optimizer steps: {record.get('optimizer_steps')} (no-control baseline schedule: "
               f"{record['config'].get('baseline_schedule', 'epochs')})"), "",
              "## Runs (95 % intervals: Wilson for accuracy, bootstrap for think tokens)", "",
              "run | accuracy % [CI] | think tokens [CI] | realized vs own 1.0 | vs reference | echo | acc per 1k tokens",
              "--- | --- | --- | --- | --- | --- | ---"]
    shown = [name for name in (*RUNS, "oracle_by_grade", "oracle_by_grade_max_gap") if name in runs] + [n for n in runs if alt.is_alternative_run(n)]
    for name in shown:
        r = runs[name]
        per_k = 1000 * r["accuracy"] / r["think_tokens"] if r["think_tokens"] else float("nan")
        echo = "-" if r.get("echo_fidelity") is None else _pct(r["echo_fidelity"])
        lines.append(f"{name} | {_pct(r['accuracy'])} {_ci(r['accuracy_ci'])} | {r['think_tokens']:.1f} "
                     f"{_ci(r['think_tokens_ci'], 1.0)} | {r['realized_ratio']} | {r['realized_vs_reference']} | {echo} "
                     f"| {per_k:.2f}")
    grades = sorted(runs["1.0"]["by_grade"], key=int)
    lines += ["", "## Accuracy % by grade (number of operations)", "", "run | " + " | ".join(grades),
              "--- | " + " | ".join("---" for _ in grades)]
    for name in shown:
        bg = runs[name]["by_grade"]
        lines.append(f"{name} | " + " | ".join(f"{_pct(bg[g]['accuracy'])} (n={bg[g]['n']})" for g in grades))
    pol = runs["policy"]
    lines += ["", "## `<COMP_AUTO>`: chosen ratios", "", f"- overall: {pol['chosen']}"]
    lines += [f"- grade {g}: {pol['chosen_by_grade'][g]} (mean {pol['mean_chosen_ratio_by_grade'][g]})" for g in grades]
    lines.append(f"- rise, hardest minus easiest grade: {format_rise(pol.get('chosen_ratio_rise'))}")
    g = record["gamma"]
    lines += ["", "## γ* of the policy rows (first-pass sweep)", "",
              f"- {g['n_targets']} of {g['n_questions']} policy-set questions; distribution {g['distribution']}",
              f"- by grade: {g['by_grade']}; mean by grade {g['mean_by_grade']}; no pass: {g['dropped_no_pass_by_grade']}",
              f"- against the ratio-shuffled null (python -m extra_cot.study.gamma): {format_null(g.get('null'))}"]
    t = record["traces"]
    lines += render_issue36(record)
    lines += alt.render(record)
    lines += ["", "## Training traces", "",
              (f"- n {t['n']}; think tokens p10 {t['think_tokens_p10']}, p90 {t['think_tokens_p90']}; shortest 10 % "
               f"mean {t['shortest_10pct_mean']}, longest 10 % mean {t['longest_10pct_mean']} (spread {t['spread']}x)"),
              (f"- most frequent sentence: {t['top_sentence']!r} in {_pct(t['top_sentence_share'])} % of traces; "
               f"grades {t['grades']}"), "", "## Targets", "", "target | value | wanted | met", "--- | --- | --- | ---"]
    for name, tgt in record["targets"].items():
        lines.append(f"{name} | {tgt['value']} | {tgt['target']} | {'yes' if tgt['met'] else 'NO'}")
    for split, rec in record["splits"].items():
        if split == record["split"]:
            continue
        lines += ["", f"## {split} split (n = {rec['n']}; for choosing options)", "",
                  "run | accuracy % [CI] | think tokens [CI]", "--- | --- | ---"]
        lines += [f"{name} | {_pct(r['accuracy'])} {_ci(r['accuracy_ci'])} | {r['think_tokens']:.1f} "
                  f"{_ci(r['think_tokens_ci'], 1.0)}" for name, r in rec["runs"].items()]
        lines.append("- targets met: " + ", ".join(f"{k} {'yes' if t['met'] else 'NO'}" for k, t in rec["targets"].items()))
    return "\n".join(lines) + "\n"


def render_issue36(record: Mapping) -> list[str]:
    """The task, the Level-0 chain check, the positive control and the frontier (absent in older records)."""
    lines = [] if "task" not in record else ["", f"Task: `{record['task']}` (extra_cot.tasks)"]
    kept = record.get("stage1_chain_kept")
    if kept:
        grades = sorted({g for by in kept.values() for g in by}, key=int)
        lines += ["", "## Stage 1: share of train traces keeping their complete gold chain (Level-0 check)", "",
                  "ratio | " + " | ".join(f"grade {g}" for g in grades), "--- | " + " | ".join("---" for _ in grades)]
        lines += [f"{r} | " + " | ".join(_pct(by[g]) if g in by else "-" for g in grades) for r, by in kept.items()]
    pc = record.get("positive_control")
    if pc:
        lines += ["", f"## Positive control: the first-pass sweep ({pc['n_questions']} questions x {pc['samples']} samples)",
                  "", f"- accuracy by ratio and grade: {pc['sweep_accuracy']}",
                  (f"- trend over the five ratios (fitted 1.0 minus 0.2): gain {pc['gain']:+} (p = {pc['gain_p']}); its "
                   f"slope over grade {pc['gain_slope']:+} (p = {pc['gain_slope_p']}); one-sided, ratio-shuffled null")]
        hard = pc.get("hardest_at_full")
        if hard:
            lines.append(f"- hardest grade ({hard['grade']}) at {hard['ratio']}: {_pct(hard['accuracy'])} "
                         f"[{_pct(hard['ci'][0])}, {_pct(hard['ci'][1])}] over {hard['n_questions']} questions "
                         "(target >= 75 %)")
    fr = record.get("frontier")
    if fr:
        pol = fr["policy"]
        lines += ["", "## The fixed-ratio frontier", "",
                  f"- {fr['interpolation']}; points (think tokens, accuracy): {fr['points']}",
                  (f"- policy: {pol['value']:+} {_ci(pol['ci'], 1.0, '+.4f')} above the frontier "
                   f"({pol['frontier_accuracy']}) at its {pol['think_tokens']} think tokens")]
        for name, share, label in (
                ("oracle_by_grade", "policy_share_of_oracle_gain",
                 "oracle by grade (each grade's lowest ratio within 3 points of 1.0, chosen on validation"),
                ("oracle_by_grade_max_gap", "policy_share_of_max_gap_oracle_gain",
                 "oracle by grade, max gap (the ratio per grade with the largest frontier gap on validation")):
            orc = fr.get(name)
            if orc:
                lines.append(f"- {label}: {record['runs'][name]['chosen']}): {orc['value']:+} "
                             f"{_ci(orc['ci'], 1.0, '+.4f')} at {orc['think_tokens']} think tokens; the policy "
                             f"realizes {fr[share]} of its gain")
    return lines


def format_rise(rise: Mapping | None) -> str:
    """A :func:`ratio_rise` for the reports; records written before it have none."""
    if rise is None:
        return "-"
    return f"{rise['value']:+.3f} [{rise['ci'][0]:+.3f}, {rise['ci'][1]:+.3f}] (grade {rise['hardest']} - {rise['easiest']})"


def format_null(null: Mapping | None) -> str:
    """One line of :func:`extra_cot.gamma.null_test`'s result (``-`` for records without one)."""
    if not null:
        return "-"
    g, s = null["gain"], null["gain_slope"]
    return (f"sweep accuracy by ratio {null['sweep_accuracy_by_ratio']}; gain 1.0 minus 0.2 {g['value']:+} (null 95 % "
            f"{g['null_ci']}, p = {g['p']}); its slope over grade {s['value']:+} (null 95 % {s['null_ci']}, p = {s['p']}); "
            f"mean γ* by grade {null['mean_by_grade']}, under the null {null['mean_by_grade_null_ci']}; "
            f"{null['rounds']} rounds")


def significant(a: Mapping, b: Mapping, key: str = "accuracy_ci") -> bool:
    """Two runs differ on ``key`` beyond noise when their 95 % intervals do not overlap."""
    return not overlaps(a[key], b[key])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the study folder")
    p.add_argument("--results", default=None,
                   help="also write the record into RESULTS, named by its task (study.config.RECORD_NAME): "
                        "study.{json,md} for chains, study_varied.{json,md} for varied")
    args = p.parse_args(argv)
    root = Path(args.out)
    record = build_record(root)
    text = render(record)
    names = [(root, "study")] + ([(Path(args.results), RECORD_NAME[record["task"]])] if args.results else [])
    for folder, name in names:
        atomic_write_json(folder / f"{name}.json", record)
        atomic_write_text(folder / f"{name}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
