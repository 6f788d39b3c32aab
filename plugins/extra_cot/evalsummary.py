"""Per-run summaries of evaluation records: the study's, the demo's and the learning run's tables.

One run = one ``extra-cot eval`` output folder (``prediction.json``, records with ``index``,
``correct``, ``think_tokens`` and ``output``) over a data set whose rows carry an integer ``grade``.
:func:`run_summary` gives accuracy (Wilson 95 %), think tokens (bootstrap 95 %), per grade, and the
chosen ratios (the leading control token of each output) overall and per grade, with the rise of
the mean chosen ratio from the easiest to the hardest grade (bootstrap 95 %).

``extra-cot summarize RUN_DIR ... --grades DATA.jsonl`` prints that summary for any eval run
folders (a Markdown table per run, or ``--json``), so a per-grade read of a run is a command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from extra_cot.cliargs import USER_ERRORS, user_error_line
from extra_cot.eval.store import METRICS, PREDICTION
from extra_cot.fileio import read_jsonl
from extra_cot.stats import bootstrap_mean, mean_diff, wilson
from extra_cot.tokens import parse_leading_control

Columns = tuple[Sequence[float], Sequence[float]]  # per question: (correct share, think tokens)


def per_question(records: Sequence[Mapping], n: int) -> Columns:
    """(correct share, mean think tokens) per eval ``index`` 0..n-1 (samples averaged); a missing
    index is an error naming it, as is an index outside 0..n-1 or a ``correct`` that is not a bool (a
    string ``"False"`` would count as right). The one per-question reduction of the study's frontier,
    its alternatives, the learning run and the demo's budget check."""
    correct: list[list[float]] = [[] for _ in range(n)]
    tokens: list[list[float]] = [[] for _ in range(n)]
    for rec in records:
        i, right = int(rec["index"]), rec["correct"]
        if not 0 <= i < n:
            raise ValueError(f"record index {i} outside the {n} questions")
        if not isinstance(right, bool):
            raise TypeError(f"record index {i}: 'correct' is {right!r}, not a bool")
        correct[i].append(float(right))
        tokens[i].append(float(rec["think_tokens"]))
    missing = [i for i in range(n) if not correct[i]]
    if missing:
        raise ValueError(f"no record for question index {missing[:5]} of {n}")
    return [sum(c) / len(c) for c in correct], [sum(t) / len(t) for t in tokens]


def ratio_key(ratio: float | None) -> str:
    """A chosen ratio as the records' key: ``"0.2"`` … ``"1.0"``, ``"none"`` for no (or a negative) ratio."""
    if ratio is None or ratio < 0:
        return "none"
    return "1.0" if ratio == 1 else f"{ratio:g}"


#: The :func:`chosen_ratio` keys that are not a fixed ratio: no leading token, or ``<COMP_AUTO>`` echoed.
NOT_A_RATIO = ("none", "auto")


def chosen_ratio(record: Mapping) -> str:
    """The leading control token of an output as a ratio string (``"none"`` without one)."""
    choice = parse_leading_control(str(record.get("output", "")))
    if choice is None:
        return "none"
    return "auto" if choice.is_policy else ratio_key(choice.ratio)


def _share(counter: Counter, n: int) -> dict[str, float]:
    return {k: round(v / n, 4) for k, v in sorted(counter.items())} if n else {}


def run_summary(records: Sequence[Mapping], grades: Sequence[int], seed: int = 0) -> dict:
    """Accuracy (Wilson), think tokens (bootstrap), per grade; chosen ratios (share and per grade)."""
    n = len(records)
    if n == 0:
        raise ValueError("run_summary of no records")
    correct = sum(bool(r["correct"]) for r in records)
    tokens = [float(r["think_tokens"]) for r in records]
    out = {"n": n, "accuracy": correct / n, "accuracy_ci": list(wilson(correct, n)),
           "think_tokens": sum(tokens) / n, "think_tokens_ci": list(bootstrap_mean(tokens, seed=seed))}
    by_grade: dict[str, list[Mapping]] = {}
    for r in records:
        by_grade.setdefault(str(grades[int(r["index"])]), []).append(r)
    out["by_grade"] = {}
    for g, rows in sorted(by_grade.items()):
        k = sum(bool(r["correct"]) for r in rows)
        out["by_grade"][g] = {"n": len(rows), "accuracy": k / len(rows), "accuracy_ci": list(wilson(k, len(rows))),
                              "think_tokens": sum(float(r["think_tokens"]) for r in rows) / len(rows)}
    chosen = Counter(chosen_ratio(r) for r in records)
    out["chosen"] = _share(chosen, n)
    out["chosen_by_grade"] = {g: _share(Counter(chosen_ratio(r) for r in rows), len(rows))
                              for g, rows in sorted(by_grade.items())}
    out["mean_chosen_ratio_by_grade"] = {g: mean_ratio(d) for g, d in out["chosen_by_grade"].items()}
    out["chosen_ratio_rise"] = ratio_rise(by_grade, seed=seed)
    return out


def ratio_rise(by_grade: Mapping[str, Sequence[Mapping]], seed: int = 0) -> dict | None:
    """Mean chosen ratio at the hardest grade minus at the easiest, with a two-sample bootstrap 95 %
    interval: a rise whose interval holds 0 is not a result. Counts the outputs that start with a
    fixed-ratio token; None when either end grade has none."""
    fixed = {g: [float(k) for k in map(chosen_ratio, rows) if k not in NOT_A_RATIO]
             for g, rows in by_grade.items()}
    easiest, hardest = min(fixed, key=int), max(fixed, key=int)
    a, b = fixed[easiest], fixed[hardest]
    if easiest == hardest or not a or not b:
        return None
    return {"easiest": easiest, "hardest": hardest, **mean_diff(a, b, seed=seed)}


def mean_ratio(shares: Mapping[str, float]) -> float | None:
    """Mean chosen ratio over the outputs that start with a fixed-ratio token (None if none do)."""
    fixed = {float(k): v for k, v in shares.items() if k not in NOT_A_RATIO}
    total = sum(fixed.values())
    return round(sum(k * v for k, v in fixed.items()) / total, 4) if total else None


def read_grades(path: Path) -> list[int]:
    grades = []
    for n, row in read_jsonl(path):
        if not isinstance(row.get("grade"), int):
            raise ValueError(f"{path}:{n}: field 'grade' is missing or not an integer")  # noqa: TRY004 (bad input file)
        grades.append(row["grade"])
    return grades


def eval_records(run_dir: Path) -> list[dict]:
    path = run_dir / PREDICTION
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not an extra-cot eval run folder, or its evaluation has not run")
    return json.loads(path.read_text(encoding="utf-8"))


def run_metrics(run_dir: Path) -> dict:
    """An evaluation run's ``metrics.json`` (``{}`` when the run wrote none)."""
    path = run_dir / METRICS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def link_realized(runs: Mapping[str, dict]) -> None:
    """Set each run summary's ``realized_ratio``: its think tokens over the ``"1.0"`` run's (None without one)."""
    own = runs.get("1.0", {}).get("think_tokens")
    for summary in runs.values():
        summary["realized_ratio"] = round(summary["think_tokens"] / own, 4) if own else None


EXAMPLES = """examples:
  extra-cot summarize runs/study/eval/test/policy --grades runs/study/data/test.jsonl
  extra-cot summarize runs/a/test/0.4 runs/b/test/0.4 --grades runs/study/data/test.jsonl --json
"""


def render(name: str, summary: Mapping) -> str:
    """One run's :func:`run_summary` as Markdown: the overall line and a per-grade table."""
    lo, hi = summary["accuracy_ci"]
    lines = [f"## {name}", "",
             (f"n {summary['n']}: accuracy {100 * summary['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}], "
              f"think tokens {summary['think_tokens']:.1f}; chosen {summary['chosen']}"), "",
             "grade | n | accuracy % [95 % CI] | think tokens | chosen", "--- | --- | --- | --- | ---"]
    for g, row in summary["by_grade"].items():
        glo, ghi = row["accuracy_ci"]
        lines.append(f"{g} | {row['n']} | {100 * row['accuracy']:.1f} [{100 * glo:.1f}, {100 * ghi:.1f}] | "
                     f"{row['think_tokens']:.1f} | {summary['chosen_by_grade'][g]}")
    return "\n".join(lines) + "\n"


def summarize(run_dir: Path, grades: Sequence[int], grades_path: Path) -> dict:
    """:func:`run_summary` of one eval run folder; a record without the fields it reads, or whose
    ``index`` has no row in the grades file, is an error naming the file and the record."""
    records, where = eval_records(run_dir), run_dir / PREDICTION
    for k, rec in enumerate(records):
        missing = [f for f in ("index", "correct", "think_tokens") if f not in rec]
        if missing:
            raise ValueError(f"{where}: record {k} has no field {missing[0]!r}")
        if not isinstance(rec["index"], int) or not 0 <= rec["index"] < len(grades):
            raise ValueError(f"{where}: record {k}: index {rec['index']!r} has no row in {grades_path} "
                             f"({len(grades)} rows): pass the data file the run evaluated")
    return run_summary(records, grades)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="extra-cot summarize", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path,
                   help="extra-cot eval run folders (OUT/<dataset>/<ratio>, each with prediction.json)")
    p.add_argument("--grades", type=Path, required=True,
                   help="the JSONL the runs evaluated; every row needs an integer 'grade' (the study's data/<split>.jsonl)")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON instead of Markdown")
    args = p.parse_args(argv)
    try:
        grades = read_grades(args.grades)
        out = {str(d): summarize(d, grades, args.grades) for d in args.runs}
    except USER_ERRORS as err:
        print(f"extra-cot summarize: {user_error_line(err)}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1) if args.json else "\n".join(render(k, v) for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
