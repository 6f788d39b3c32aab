"""The alternatives a user has, as rows of the study record (issue 38, item 9; pure apart from reading).

* ``forcing`` — s1-style budget forcing (:mod:`extra_cot.study.forcing`): the no-control baseline
  with its think block closed at each fixed ratio's mean think tokens; runs ``forced_0.2`` … ``forced_1.0``.
* ``blind`` — a formula- and question-blind compressor (:mod:`extra_cot.compress.blind`, TokenSkip-style)
  trained as the method's fixed ratios are; runs ``blind_0.2`` … ``blind_1.0``.

Each run has the fields of the study's other runs (accuracy with a Wilson interval, think tokens with a
bootstrap interval, per grade). Per ratio the record holds Extra-CoT minus the alternative, in accuracy
and in think tokens, over the same questions: the mean per-question difference with a paired bootstrap
95 % interval (the questions resampled once for both runs: :func:`extra_cot.stats.bootstrap_mean` of
the per-question differences), and a verdict that says "beyond noise" only when the interval excludes 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from extra_cot.evalsummary import eval_records, per_question, run_metrics, run_summary
from extra_cot.stats import bootstrap_mean
from extra_cot.study import forcing

FIXED = forcing.FIXED
#: run-name prefix of each alternative (``forced_0.2``, ``blind_0.2``)
PREFIX = {"forcing": "forced", "blind": "blind"}
#: the study steps of each alternative (their wall time is the alternative's cost)
STEPS = {"forcing": ("budget-forcing",),
         "blind": ("compress-train-blind", "compress-policy-blind", "build-blind-fixed", "build-blind-policy",
                   "train-blind-first", "train-blind", "eval-blind")}
#: the blind model's two trainings (``models/<name>``), for their optimizer steps
BLIND_MODELS = ("blind_first", "blind")


def run_name(alternative: str, ratio: str) -> str:
    return f"{PREFIX[alternative]}_{ratio}"


def is_alternative_run(name: str) -> bool:
    return any(name.startswith(f"{p}_") for p in PREFIX.values())


def run_dirs(root: Path, split: str, alternative: str) -> dict[str, Path]:
    """Evaluation folder (``prediction.json``, ``metrics.json``) of each run of ``alternative``."""
    if alternative == "forcing":
        return {run_name(alternative, r): forcing.run_dir(root / "eval_forced", split, r) for r in FIXED}
    return {run_name(alternative, r): root / "eval_blind" / split / r for r in FIXED}


def verdict(ci: Sequence[float]) -> str:
    """Extra-CoT minus the alternative: beyond noise only when the 95 % interval excludes 0."""
    if ci[0] > 0:
        return "Extra-CoT higher, beyond noise"
    if ci[1] < 0:
        return "alternative higher, beyond noise"
    return "within noise"


def paired_difference(ours: Sequence[Mapping], theirs: Sequence[Mapping], n: int, seed: int = 0) -> dict:
    """Extra-CoT's run minus the alternative's over the same ``n`` questions (eval ``index`` 0..n-1):
    accuracy and think tokens, each the mean per-question difference with a paired bootstrap 95 %
    interval; ``verdict`` is the accuracy's."""
    a, b = per_question(ours, n), per_question(theirs, n)
    out = {}
    for key, k in (("accuracy", 0), ("think_tokens", 1)):
        diffs = [x - y for x, y in zip(a[k], b[k], strict=True)]
        lo, hi = bootstrap_mean(diffs, seed=seed)
        out[f"{key}_diff"], out[f"{key}_diff_ci"] = round(sum(diffs) / n, 4), [round(lo, 4), round(hi, 4)]
    out["verdict"] = verdict(out["accuracy_diff_ci"])
    return out


def compare(ours: Mapping[str, Sequence[Mapping]], theirs: Mapping[str, Sequence[Mapping]], alternative: str,
            n: int) -> dict:
    """Per fixed ratio, Extra-CoT's run minus the alternative's (:func:`paired_difference`), and the
    ratios where Extra-CoT's accuracy is higher beyond noise."""
    per_ratio = {r: paired_difference(ours[r], theirs[run_name(alternative, r)], n) for r in FIXED}
    return {"runs": [run_name(alternative, r) for r in FIXED], "vs_extra_cot": per_ratio,
            "extra_cot_higher_beyond_noise": [r for r, d in per_ratio.items() if d["accuracy_diff_ci"][0] > 0]}


def _own_reference(alternative: str, runs: Mapping[str, dict]) -> float | None:
    """The think tokens an alternative's realized ratio is taken against: the unforced baseline's for
    forcing, the blind model's own 1.0 for blind."""
    ref = runs.get("no_control") if alternative == "forcing" else runs.get(run_name(alternative, "1.0"))
    return (ref or {}).get("think_tokens") or None


def add_runs(root: Path, split: str, grades: list[int], alternatives: Sequence[str], runs: dict[str, dict],
             ours: Mapping[str, Sequence[Mapping]], ref_mean: float) -> dict[str, dict]:
    """Read each alternative's runs of ``split`` into ``runs`` (the fields of the others:
    :func:`extra_cot.evalsummary.run_summary`) and return ``{alternative: comparison}`` (:func:`compare`;
    forcing adds the think budgets it was given). ``ours``: the Extra-CoT model's records per fixed ratio."""
    block = {}
    for alt in alternatives:
        dirs = run_dirs(root, split, alt)
        records = {name: eval_records(d) for name, d in dirs.items()}
        for name, recs in records.items():
            metrics = run_metrics(dirs[name])
            runs[name] = {**run_summary(recs, grades), "echo_fidelity": metrics.get("echo_fidelity"),
                          "think_budget": metrics.get("think_budget")}
        own = _own_reference(alt, runs)
        for name in records:
            tokens = runs[name]["think_tokens"]
            runs[name]["realized_ratio"] = round(tokens / own, 4) if own else None
            runs[name]["realized_vs_reference"] = round(tokens / ref_mean, 4) if ref_mean else None
        block[alt] = compare(ours, records, alt, len(grades))
        if alt == "forcing":
            block[alt]["think_budgets"] = {r: runs[run_name(alt, r)]["think_budget"] for r in FIXED}
    return block


def optimizer_steps(root: Path) -> dict[str, int | None]:
    """``global_step`` of the blind model's two trainings (None where absent)."""
    out = {}
    for name in BLIND_MODELS:
        path = root / "models" / name / "trainer_state.json"
        out[name] = json.loads(path.read_text()).get("global_step") if path.is_file() else None
    return out


def minutes(step_wall_s: Mapping[str, float | None], alternative: str) -> float:
    """Wall minutes of an alternative's steps in this folder's runs."""
    return round(sum(step_wall_s.get(s) or 0.0 for s in STEPS[alternative]) / 60, 1)


def render(record: Mapping) -> list[str]:
    """Markdown lines of the record's ``alternatives`` block (none for records without one)."""
    alts, runs = record.get("alternatives") or {}, record["runs"]
    if not alts:
        return []
    lines = ["", "## Alternatives: Extra-CoT minus each, per ratio (same questions; paired bootstrap 95 %)", ""]
    for alt, block in alts.items():
        extra = (f"; think budgets {block['think_budgets']}" if "think_budgets" in block else "") + (
            f"; optimizer steps {block['optimizer_steps']}" if block.get("optimizer_steps") else "")
        lines += [f"### {alt} ({block.get('minutes', '-')} min of steps{extra})", "",
                  ("ratio | Extra-CoT acc % | alternative acc % [CI] | acc diff (points) [CI] | Extra-CoT tokens | "
                   "alternative tokens [CI] | token diff [CI] | verdict"), "--- | --- | --- | --- | --- | --- | --- | ---"]
        for r, d in block["vs_extra_cot"].items():
            ours, theirs = runs[r], runs[run_name(alt, r)]
            lines.append(
                f"{r} | {100 * ours['accuracy']:.1f} | {100 * theirs['accuracy']:.1f} "
                f"[{100 * theirs['accuracy_ci'][0]:.1f}, {100 * theirs['accuracy_ci'][1]:.1f}] | "
                f"{100 * d['accuracy_diff']:+.1f} [{100 * d['accuracy_diff_ci'][0]:+.1f}, {100 * d['accuracy_diff_ci'][1]:+.1f}]"
                f" | {ours['think_tokens']:.1f} | {theirs['think_tokens']:.1f} [{theirs['think_tokens_ci'][0]:.1f}, "
                f"{theirs['think_tokens_ci'][1]:.1f}] | {d['think_tokens_diff']:+.1f} [{d['think_tokens_diff_ci'][0]:+.1f}, "
                f"{d['think_tokens_diff_ci'][1]:+.1f}] | {d['verdict']}")
        higher = block["extra_cot_higher_beyond_noise"]
        lines += ["", f"- Extra-CoT's accuracy above {alt}'s beyond noise at: {', '.join(higher) if higher else 'no ratio'}", ""]
    return lines
