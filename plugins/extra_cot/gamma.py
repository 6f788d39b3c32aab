"""γ*(x), the ratio label of the ``<COMP_AUTO>`` rows and of RL data: the rule and its null test (pure functions).

From a sweep of one model at every fixed ratio (pass@k per question), γ*(x) is the lowest ratio that
passes with every higher ratio passing too (:func:`gt_ratio`, the paper's RL-data rule, docs/method.md
Stage 3); a question that fails at 1.0 has none. ``build-rl`` (:mod:`extra_cot.rl.rl_data`) keeps RL
questions by it; the study's and the demo's ``gamma`` step (``python -m extra_cot.study.gamma``)
labels the policy rows with :func:`label`, which can also give a question that passes at *no* ratio a
γ* (``unsolved``, ours, not the paper's).

Is γ* more than sampling noise? (ours, not the paper's.) With k samples per ratio, a question whose
accuracy does not depend on the ratio still gets a γ*: "this and every higher ratio passed" happens
by chance, and it happens at a higher ratio the less often the question is solved, so γ* rises with
difficulty even when compression costs nothing. :func:`null_test` measures that: it shuffles each
question's k x 5 correctness flags across the ratios (the null: the ratio does not matter, the
question's difficulty is kept) and reports where the sweep's gain from 0.2 to 1.0, and that gain's
slope over grade, fall among the shuffled draws (95 % range and permutation p-value), and what mean
γ* per grade chance alone gives; :func:`positive_control` reads issue 36's positive control off it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from extra_cot.fileio import stale_options
from extra_cot.stats import bootstrap_ratio, percentile_interval, permutation_p
from extra_cot.tokens import FIXED_RATIOS, ratio_dir_name


def targets_stale(summary_path: Path, budget_tolerance: float | None) -> str | None:
    """The ``gamma`` step's resume check (study and demo): targets written under another
    ``--budget-tolerance``, or before it existed, are stale."""
    saved = json.loads(summary_path.read_text(encoding="utf-8"))
    return stale_options(summary_path, saved, {"budget_tolerance": budget_tolerance})


def gt_ratio(passed: Mapping[float, bool], ratios: Iterable[float] = FIXED_RATIOS) -> float | None:
    """γ*: the lowest ratio of the longest passing run that ends at the highest ratio."""
    best = None
    for ratio in sorted(ratios, reverse=True):
        if not passed.get(ratio, False):
            break
        best = ratio
    return best


def label(passed: Mapping[float, bool], unsolved: float | None = None) -> float | None:
    """γ* of one question from its pass@k per ratio; ``unsolved`` is the γ* of a question that
    passes at no ratio (``None``: no γ*, the question is dropped)."""
    gamma = gt_ratio(passed)
    if gamma is None and unsolved is not None and not any(passed.values()):
        return unsolved
    return gamma


def sample_flags(records_by_ratio: Mapping[float, Sequence[Mapping]]) -> dict[int, dict[float, list[bool]]]:
    """Each question's correctness per sample at each ratio: eval ``index`` -> ratio -> flags."""
    flags: dict[int, dict[float, list[bool]]] = {}
    for ratio, records in records_by_ratio.items():
        for rec in records:
            flags.setdefault(int(rec["index"]), {}).setdefault(ratio, []).append(bool(rec["correct"]))
    return flags


def _slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` on ``x`` (0.0 without two distinct ``x``)."""
    n = len(x)
    mx, my = sum(x) / max(n, 1), sum(y) / max(n, 1)
    sxx = sum((a - mx) ** 2 for a in x)
    return 0.0 if sxx == 0 else sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx


def _accuracy(flags: Mapping[int, Mapping[float, Sequence[bool]]], ratio: float) -> float:
    return sum(sum(per[ratio]) for per in flags.values()) / sum(len(per[ratio]) for per in flags.values())


def _trend(per: Mapping[float, Sequence[bool]]) -> float:
    """One question's least-squares slope of accuracy on the ratio, times the sweep's span (1.0 - 0.2):
    the fitted accuracy at 1.0 minus at 0.2, from all five ratios (a trend, not two end points)."""
    ratios = sorted(per)
    return _slope(ratios, [sum(per[r]) / len(per[r]) for r in ratios]) * (ratios[-1] - ratios[0])


def _null_stats(flags: Mapping[int, Mapping[float, Sequence[bool]]], grades: Sequence[int],
                unsolved: float | None) -> tuple[dict[int, float], dict[str, float]]:
    """(γ* per question, statistics): ``gain`` = accuracy at 1.0 minus at 0.2, ``gain_slope`` = slope
    over grade of that gain per question; ``trend_gain`` = the mean per-question trend over all five
    ratios (:func:`_trend`), ``trend_gain_slope`` = its slope over grade."""
    labels = {i: g for i, per in flags.items()
              if (g := label({r: any(v) for r, v in per.items()}, unsolved)) is not None}
    low, high = min(FIXED_RATIOS), max(FIXED_RATIOS)
    gain = {i: sum(per[high]) / len(per[high]) - sum(per[low]) / len(per[low]) for i, per in flags.items()}
    trend = {i: _trend(per) for i, per in flags.items()}
    x = [grades[i] for i in gain]
    return labels, {"gain": _accuracy(flags, high) - _accuracy(flags, low), "gain_slope": _slope(x, list(gain.values())),
                    "trend_gain": sum(trend.values()) / max(len(trend), 1),
                    "trend_gain_slope": _slope(x, [trend[i] for i in gain])}


def null_test(flags: Mapping[int, Mapping[float, Sequence[bool]]], grades: Sequence[int],
              unsolved: float | None = None, rounds: int = 2000, seed: int = 0) -> dict:
    """The ratio-shuffled null of γ* (module doc): each round shuffles every question's flags across
    the ratios (k per ratio kept, so each question's difficulty stays) and relabels.

    Tests (permutation p-values): ``gain`` = the sweep's accuracy at 1.0 minus at 0.2 (two-sided:
    does the budget matter at all?) and ``gain_slope`` = the least-squares slope over grade of each
    question's gain (one-sided: do harder questions gain more from a larger budget, which is what
    a γ* rising with grade should mean?). Description: the 95 % range of mean γ* per grade and of
    the number of γ* under the null, i.e. what chance alone gives. A p above 0.05 means the sweep
    does not show the effect; the slope of γ* itself is not used as a test, because a γ* rise comes
    from difficulty alone (tests/study/test_study_stats.py simulates both cases)."""
    if rounds < 1:
        raise ValueError(f"null_test needs rounds >= 1, got {rounds}")
    if any(set(per) != set(FIXED_RATIOS) for per in flags.values()):
        raise ValueError(f"null_test needs every question swept at every ratio {list(FIXED_RATIOS)}")
    labels, observed = _null_stats(flags, grades, unsolved)
    rng, draws = random.Random(seed), {**{k: [] for k in observed}, "n": [], "grade": {}}
    for _ in range(rounds):
        shuffled = {}
        for i, per in flags.items():
            pool = [f for r in FIXED_RATIOS for f in per[r]]
            rng.shuffle(pool)
            at, shuffled[i] = 0, {}
            for r in FIXED_RATIOS:
                shuffled[i][r], at = pool[at:at + len(per[r])], at + len(per[r])
        null_labels, null_stats = _null_stats(shuffled, grades, unsolved)
        for key, value in null_stats.items():
            draws[key].append(value)
        draws["n"].append(float(len(null_labels)))
        for grade, mean in _mean_by_grade(null_labels, grades).items():
            draws["grade"].setdefault(grade, []).append(mean)

    def _ci(values: list[float]) -> list[float]:
        return [round(v, 4) for v in percentile_interval(values)]

    def _test(key: str, two_sided: bool = False) -> dict:
        return {"value": round(observed[key], 4), "null_ci": _ci(draws[key]),
                "p": round(permutation_p(draws[key], observed[key], two_sided=two_sided), 4)}

    return {
        "rounds": rounds, "seed": seed,
        "sweep_accuracy_by_ratio": {f"{r:g}": round(_accuracy(flags, r), 4) for r in FIXED_RATIOS},
        "gain": _test("gain", two_sided=True), "gain_slope": _test("gain_slope"),
        "trend_gain": _test("trend_gain"), "trend_gain_slope": _test("trend_gain_slope"),
        "mean_by_grade": {g: round(v, 4) for g, v in sorted(_mean_by_grade(labels, grades).items(), key=lambda kv: int(kv[0]))},
        "mean_by_grade_null_ci": {g: _ci(v) for g, v in sorted(draws["grade"].items(), key=lambda kv: int(kv[0]))},
        "n_targets": len(labels), "n_targets_null_ci": _ci(draws["n"]),
    }


def positive_control(flags: Mapping[int, Mapping[float, Sequence[bool]]], grades: Sequence[int],
                     null: Mapping) -> dict:
    """Issue 36's positive control from a sweep and its :func:`null_test`: accuracy per ratio and grade,
    and the trend tests over all five ratios (one-sided: does accuracy rise with the budget, and more
    on harder grades?). ``gain`` = the mean per-question least-squares slope of accuracy on the ratio
    times 0.8 (fitted accuracy at 1.0 minus at 0.2); ``gain_slope`` = that gain's slope over grade;
    ``hardest_at_full`` = the hardest grade's accuracy at the largest ratio with a 95 % percentile
    bootstrap interval over its questions (each question's samples resampled together)."""
    by: dict[str, dict[str, list[bool]]] = {}
    for i, per in flags.items():
        for r, values in per.items():
            by.setdefault(ratio_dir_name(r), {}).setdefault(str(grades[i]), []).extend(values)
    samples = sorted({len(v) for per in flags.values() for v in per.values()})
    return {
        "sweep_accuracy": {r: {g: round(sum(v) / len(v), 4) for g, v in sorted(by_g.items(), key=lambda kv: int(kv[0]))}
                           for r, by_g in sorted(by.items(), key=lambda kv: float(kv[0]))},
        "n_questions": len(flags), "samples": samples[0] if len(samples) == 1 else samples,
        "gain": null["trend_gain"]["value"], "gain_p": null["trend_gain"]["p"],
        "gain_slope": null["trend_gain_slope"]["value"], "gain_slope_p": null["trend_gain_slope"]["p"],
        "rounds": null["rounds"],
        "hardest_at_full": _hardest_at_full(flags, grades),
    }


def _hardest_at_full(flags: Mapping[int, Mapping[float, Sequence[bool]]], grades: Sequence[int]) -> dict | None:
    hardest = max((grades[i] for i in flags), default=None)
    ratio = max((r for i in flags if grades[i] == hardest for r in flags[i]), default=None)
    per = [flags[i][ratio] for i in flags if grades[i] == hardest and flags[i].get(ratio)]
    if not per:
        return None
    num, den = [float(sum(v)) for v in per], [float(len(v)) for v in per]
    lo, hi = bootstrap_ratio(num, den)
    return {"grade": hardest, "ratio": ratio_dir_name(ratio), "accuracy": round(sum(num) / sum(den), 4),
            "ci": [round(lo, 4), round(hi, 4)], "n_questions": len(per)}


def _mean_by_grade(labels: Mapping[int, float], grades: Sequence[int]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for i, g in labels.items():
        by.setdefault(str(grades[i]), []).append(g)
    return {g: sum(v) / len(v) for g, v in by.items()}
