"""Study step ``gamma``: the model-based γ*(x) of the ``<COMP_AUTO>`` rows, from a sweep (CLI).

The first-pass model (mixed-ratio SFT, fixed ratios only) answers every policy-set question at
each fixed ratio (``extra-cot eval --ratios 0.2,…,1.0 --n-samples k``, pass@k). γ*(x) is the
lowest ratio that passes with every higher ratio passing too (the rule: :mod:`extra_cot.gamma`,
the paper's RL-data rule applied to the SFT policy rows); a question that fails at 1.0 gets no
policy row. The compressor's text at γ* then becomes the row's policy response (build-sft).

``--unsolved 1.0`` (ours, not the paper's) labels a question that passes at *no* ratio γ* = 1.0
(the largest budget) instead of dropping it: with a weak model these are most of the hard
questions, and without them the policy rows hold almost no hard question to learn from. A question
that passes below 1.0 but fails at 1.0 stays without a γ* either way.

``--budget-tolerance τ`` (ours, default 0.1; ``none`` = plain pass@k): a sample passes ratio r only
if it is correct and its think tokens stay within (r + τ) x the question's mean correct think tokens
at 1.0 (:func:`extra_cot.rl.rl_data.aggregate`). A first-pass model that ignores ``<COMP_20>`` on a
hard question and writes the whole chain would otherwise label it γ* = 0.2
(docs/study.md, "γ* from passes within budget"). The null test below still reads plain correctness.

Is γ* more than sampling noise? ``--null-rounds``: the ratio-shuffled null test
(:func:`extra_cot.gamma.null_test`) and issue 36's positive control, written into the summary.

``python -m extra_cot.study.gamma --sweep runs/study/sweep/policy --data runs/study/data/policy_gsm8k.jsonl \\
    --out runs/study/stage1/policy_targets.jsonl``
writes ``{"question", "gt_ratio", "grade"}`` rows and ``<out>.summary.json`` (γ* per grade, and the
null test under ``"null"``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from extra_cot.eval.store import PREDICTION
from extra_cot.evalsummary import read_grades
from extra_cot.fileio import atomic_write_json, atomic_write_jsonl
from extra_cot.gamma import gt_ratio, label, null_test, positive_control, sample_flags
from extra_cot.rl.rl_data import DEFAULT_TOLERANCE, aggregate
from extra_cot.study.config import UNSOLVED, parse_tolerance
from extra_cot.study.report import format_null
from extra_cot.tokens import FIXED_RATIOS, ratio_dir_name


def read_sweep(sweep_dir: Path) -> dict[float, list[dict]]:
    """Prediction records per fixed ratio of one swept data set; a missing ratio is an error."""
    out = {}
    for ratio in FIXED_RATIOS:
        path = sweep_dir / ratio_dir_name(ratio) / PREDICTION
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the sweep has no {ratio:g} run; run the sweep step first")
        out[ratio] = json.loads(path.read_text(encoding="utf-8"))
    return out


def targets(records_by_ratio: dict[float, list[dict]], grades: list[int],
            unsolved: float | None = None, budget_tolerance: float | None = None) -> tuple[list[dict], dict]:
    """(target rows, summary): γ* per question and its distribution per grade; ``unsolved`` is the
    γ* of a question that passes at no ratio (``None``: dropped); ``budget_tolerance``: a pass counts
    only from a correct sample within its ratio's budget (:func:`extra_cot.rl.rl_data.aggregate`;
    None: plain pass@k). The summary also gives γ* under plain pass@k (``distribution_plain``) and
    how many questions lost a pass to the budget (``over_budget_by_grade``)."""
    stats = aggregate("policy", records_by_ratio, budget_tolerance)
    plain = aggregate("policy", records_by_ratio)
    rows, by_grade, dropped, labelled, over = [], {}, Counter(), Counter(), Counter()
    for index in sorted(stats):
        item, grade = stats[index], grades[index]
        over[str(grade)] += item.over_budget > 0
        gamma = label(item.passed, unsolved)
        if gamma is not None and gt_ratio(item.passed) is None:
            labelled[str(grade)] += 1
        if gamma is None:
            dropped[str(grade)] += 1
            continue
        rows.append({"question": item.question, "gt_ratio": gamma, "grade": grade})
        by_grade.setdefault(str(grade), Counter())[f"{gamma:g}"] += 1
    plain_labels = [g for item in plain.values() if (g := label(item.passed, unsolved)) is not None]
    summary = {
        "budget_tolerance": budget_tolerance,
        "n_questions": len(stats), "n_targets": len(rows), "dropped_no_pass_by_grade": dict(sorted(dropped.items())),
        "over_budget_by_grade": dict(sorted(over.items())),
        "distribution_plain": dict(sorted(Counter(f"{g:g}" for g in plain_labels).items())),
        "unsolved_labelled_by_grade": dict(sorted(labelled.items())),
        "distribution": dict(sorted(Counter(f"{r['gt_ratio']:g}" for r in rows).items())),
        "by_grade": {g: dict(sorted(c.items())) for g, c in sorted(by_grade.items())},
        "mean_by_grade": {g: round(sum(float(k) * v for k, v in c.items()) / sum(c.values()), 4)
                          for g, c in sorted(by_grade.items())},
    }
    return rows, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.gamma", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", required=True, help="the swept data set's folder (ratio dirs 0.2 … 1.0 inside)")
    p.add_argument("--data", required=True, help="the swept JSONL (rows carry 'grade', in eval index order)")
    p.add_argument("--out", required=True, help="JSONL of {question, gt_ratio, grade} (build-sft --policy-ratios)")
    p.add_argument("--unsolved", choices=list(UNSOLVED), default="drop",
                   help="γ* of a question that passes at no ratio: drop (no policy row, the paper's rule; default) "
                   "or 1.0 (the largest budget)")
    p.add_argument("--budget-tolerance", type=parse_tolerance, default=DEFAULT_TOLERANCE,
                   help=f"a correct sample passes ratio r only if its think tokens stay within (r + this) x the "
                   f"question's mean correct think tokens at 1.0 (ours; default {DEFAULT_TOLERANCE:g}, the paper's "
                   "comp_tolerance τ); none: plain pass@k (a sample that ignored its budget counts)")
    p.add_argument("--null-rounds", type=int, default=2000,
                   help="rounds of the ratio-shuffled null test of γ* (see above) written under 'null' in the "
                   "summary; 0 skips it")
    p.add_argument("--null-seed", type=int, default=0, help="seed of the null test's shuffles")
    args = p.parse_args(argv)
    if args.null_rounds < 0:
        p.error(f"--null-rounds must be >= 0, got {args.null_rounds}")
    sweep, grades, unsolved = read_sweep(Path(args.sweep)), read_grades(Path(args.data)), UNSOLVED[args.unsolved]
    rows, summary = targets(sweep, grades, unsolved, args.budget_tolerance)
    if args.null_rounds:
        flags = sample_flags(sweep)
        summary["null"] = null_test(flags, grades, unsolved, args.null_rounds, args.null_seed)
        summary["positive_control"] = positive_control(flags, grades, summary["null"])
    atomic_write_jsonl(args.out, rows)
    atomic_write_json(f"{args.out}.summary.json", summary)
    print(f"wrote {args.out}: {summary['n_targets']} of {summary['n_questions']} questions; "
          f"γ* {summary['distribution']} (plain pass@k: {summary['distribution_plain']}); "
          f"mean by grade {summary['mean_by_grade']}")
    if "null" in summary:
        print(f"ratio-shuffled null: {format_null(summary['null'])}")
        hard = summary["positive_control"]["hardest_at_full"]
        if hard:
            print(f"positive control: hardest grade {hard['grade']} at {hard['ratio']} {hard['accuracy']:.1%} "
                  f"[{hard['ci'][0]:.1%}, {hard['ci'][1]:.1%}] over {hard['n_questions']} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
