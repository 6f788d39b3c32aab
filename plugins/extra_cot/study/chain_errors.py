"""Why a swept model gets a ``chains`` question wrong: each answer's chain lines against the gold chain.

A diagnostic for issue 36's positive control, which needs the hardest grade right at 1.0 in >= 75 %
of samples. When it is not, this says what to change: a model that loses its place in the list of
steps (``step_count``) needs more distinct questions or fewer steps; one that slips on sums
(``arithmetic``) needs smaller numbers or more training. Ours, not the paper's.

Each sample of a sweep (``SWEEP/<ratio>/prediction.json``, rows in the swept JSONL's order) gets one
category, checked in this order:

- ``correct``: graded right (whatever its lines);
- ``no_chain``: wrong, with no ``a ± b = c`` line in the counted reasoning (:func:`extra_cot.think.think_span`);
- ``step_count``: wrong, with more or fewer lines than the gold chain has steps;
- ``arithmetic``: a line whose own sum is wrong (``47 - 9 = 36``);
- ``step_read``: a line that applies another step's operation or amount than the gold step at its place;
- ``carry``: a line that does not start from the previous line's result (or the first from the start);
- ``other``: every line right, the answer still graded wrong (a boxed number that is not the last line's).

The gold chain is the swept row's GSM8K ``answer`` annotations (:func:`extra_cot.study.chain_kept.gold_chain`).

``python -m extra_cot.study.chain_errors --sweep runs/study/sweep/policy --data runs/study/data/policy_gsm8k.jsonl``
prints a table per ratio and grade (``--out F``: also as JSON ``{ratio: {grade: {category: share}}}`` plus ``n``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from extra_cot.fileio import atomic_write_json, read_jsonl
from extra_cot.study.chain_kept import gold_chain
from extra_cot.study.gamma import read_sweep
from extra_cot.think import think_span
from extra_cot.tokens import ratio_dir_name

CATEGORIES = ("correct", "no_chain", "step_count", "arithmetic", "step_read", "carry", "other")
_LINE = re.compile(r"^[ \t]*(\d+)[ \t]*([+-])[ \t]*(\d+)[ \t]*=[ \t]*(\d+)[ \t]*$", re.MULTILINE)

Step = tuple[int, str, int, int]


def chain_lines(response: str) -> list[Step]:
    """The ``(a, op, b, c)`` of every line of the counted reasoning that is exactly ``a ± b = c``."""
    return [(int(a), op, int(b), int(c)) for a, op, b, c in _LINE.findall(think_span(response).counted)]


def category(lines: Sequence[Step], gold: Sequence[Step], correct: bool) -> str:
    """One of :data:`CATEGORIES` for an answer's chain ``lines`` against the ``gold`` chain (module doc)."""
    if correct:
        return "correct"
    if not lines:
        return "no_chain"
    if len(lines) != len(gold):
        return "step_count"
    if any((a + b if op == "+" else a - b) != c for a, op, b, c in lines):
        return "arithmetic"
    if any((op, b) != (g_op, g_b) for (_, op, b, _), (_, g_op, g_b, _) in zip(lines, gold, strict=True)):
        return "step_read"
    starts = [gold[0][0]] + [c for *_, c in lines[:-1]]
    if any(a != s for (a, *_), s in zip(lines, starts, strict=True)):
        return "carry"
    return "other"


def _gold(answer: str) -> list[Step]:
    return [(int(a), op, int(b), int(c)) for a, op, b, c in gold_chain(answer)]


def error_table(records_by_ratio: Mapping[float, Sequence[Mapping]], rows: Sequence[Mapping]) -> dict:
    """``{"share": {ratio: {grade: {category: share}}}, "n": {ratio: {grade: samples}}}`` of a sweep
    whose records carry ``index`` into ``rows`` (``grade``, ``answer``), ``output`` and ``correct``."""
    share: dict[str, dict] = {}
    counts: dict[str, dict] = {}
    for ratio, records in sorted(records_by_ratio.items()):
        by_grade: dict[str, Counter] = {}
        for rec in records:
            row = rows[rec["index"]]
            kind = category(chain_lines(rec["output"]), _gold(row["answer"]), rec["correct"] is True)
            by_grade.setdefault(str(row["grade"]), Counter())[kind] += 1
        key = ratio_dir_name(ratio)
        order = sorted(by_grade, key=int)
        share[key] = {g: {c: round(by_grade[g][c] / sum(by_grade[g].values()), 4) for c in CATEGORIES} for g in order}
        counts[key] = {g: sum(by_grade[g].values()) for g in order}
    return {"share": share, "n": counts}


def format_table(table: Mapping) -> str:
    """The table as text: one line per ratio and grade, categories in :data:`CATEGORIES` order."""
    head = f"{'ratio':>5} {'grade':>5} {'n':>5} " + " ".join(f"{c:>10}" for c in CATEGORIES)
    lines = [head]
    for ratio, by_grade in table["share"].items():
        for grade, shares in by_grade.items():
            cells = " ".join(f"{shares[c]:>10.1%}" for c in CATEGORIES)
            lines.append(f"{ratio:>5} {grade:>5} {table['n'][ratio][grade]:>5} {cells}")
    return "\n".join(lines)


def read_rows(data: Path) -> list[dict]:
    """The swept JSONL's rows; each needs an integer ``grade`` and a string GSM8K ``answer``."""
    rows = []
    for n, row in read_jsonl(data):
        if not isinstance(row.get("grade"), int) or isinstance(row.get("grade"), bool):
            raise ValueError(f"{data}:{n}: field 'grade' must be an integer, got {row.get('grade')!r}")  # noqa: TRY004 (a bad input file)
        if not isinstance(row.get("answer"), str) or not gold_chain(row["answer"]):
            raise ValueError(f"{data}:{n}: field 'answer' must be a GSM8K solution with <<a+b=c>> annotations")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.chain_errors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", required=True, help="the swept data set's folder (ratio dirs 0.2 … 1.0 inside)")
    p.add_argument("--data", required=True, help="the swept JSONL (rows with 'grade' and a GSM8K 'answer', in eval order)")
    p.add_argument("--out", default=None, help="also write the table here as JSON")
    args = p.parse_args(argv)
    try:
        rows = read_rows(Path(args.data))
        records = read_sweep(Path(args.sweep))
        for ratio, recs in records.items():
            bad = next((r for r in recs if not 0 <= int(r.get("index", -1)) < len(rows)), None)
            if bad is not None:
                raise ValueError(f"{args.sweep} ({ratio:g}): record index {bad.get('index')!r} is not a row of {args.data}")
        table = error_table(records, rows)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(table))
    if args.out:
        atomic_write_json(Path(args.out), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
