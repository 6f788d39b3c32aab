"""Study step ``chain-kept``: the Level-0 check of a budget-sensitive task (issue 36), in seconds.

Per ratio and grade, the share of Stage 1's compressed traces that keep the *complete* gold chain:
every equation ``a op b = c`` of the generator's solution. The gold chain is recomputed by the
generator (:func:`extra_cot.study.data.build_splits` from ``data_config.json``: task, seed, sizes),
not read from the trace, and looked for by a parser of its own (:func:`chain_kept`: whitespace
normalised, numbers bounded), not by the compressor's segmenter. ``1.0`` is the uncompressed trace
(every generated trace holds its chain: a share below 1 there is a generator or parser bug).

The check (:func:`check`): at 0.2 the chain survives in >= 90 % of the easiest grade's traces and in
<= 10 % of the hardest grade's, and at some ratio <= 0.8 in >= 90 % of the hardest grade's: the
budget a trace needs rises with its step count. Shares count the traces that have a compression at
that ratio (a row Stage 1 dropped at a ratio trains nothing there); ``n`` holds those counts.

``python -m extra_cot.study.chain_kept --data runs/study/data --split train \\
    --compressed runs/study/stage1/train_compressed.jsonl --out runs/study/stage1/train_chain_kept.json``
(``--require``: exit 1 when the check fails, so a study stops before training on a task without payoff).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from extra_cot.fileio import atomic_write_json, read_jsonl

_ANNOTATION = re.compile(r"<<\s*(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(\d+)\s*>>")
#: Issue 36's Level-0 targets.
EASIEST_AT_LOW_MIN, HARDEST_AT_LOW_MAX, HARDEST_SOMEWHERE_MIN = 0.9, 0.1, 0.9
LOW_RATIO, HIGH_RATIO_MAX = "0.2", 0.8


def gold_chain(answer: str) -> list[tuple[str, str, str, str]]:
    """The ``(a, op, b, c)`` of every GSM8K calculator annotation ``<<a op b=c>>`` of a solution."""
    return _ANNOTATION.findall(answer)


def chain_kept(text: str, chain: Sequence[tuple[str, str, str, str]]) -> bool:
    """Whether every equation of ``chain`` is in ``text``, spaced or not (``23 + 7 = 30``,
    ``23+7=30``), with no digit glued to either end (``3 + 7 = 10`` is not in ``13 + 7 = 100``)."""
    flat = " ".join(text.split())
    return all(re.search(rf"(?<![\d.]){a} ?{re.escape(op)} ?{b} ?= ?{c}(?![\d])", flat) for a, op, b, c in chain)


def kept_table(rows: Iterable[tuple[int, Sequence, Mapping[str, str]]]) -> tuple[dict, dict]:
    """``({ratio: {grade: share}}, {ratio: {grade: n}})`` from ``(grade, gold chain, {ratio: text})``
    rows (a ratio a row lacks is not counted for it)."""
    kept: dict[str, dict[str, list[bool]]] = {}
    for grade, chain, texts in rows:
        for ratio, text in texts.items():
            kept.setdefault(ratio, {}).setdefault(str(grade), []).append(chain_kept(text, chain))
    order = sorted(kept, key=float)
    share = {r: {g: round(sum(v) / len(v), 4) for g, v in sorted(kept[r].items(), key=lambda kv: int(kv[0]))}
             for r in order}
    return share, {r: {g: len(kept[r][g]) for g in share[r]} for r in order}


def check(share: Mapping[str, Mapping[str, float]]) -> dict:
    """Issue 36's Level-0 check on a :func:`kept_table` share table: ``{"value", "target", "met"}``."""
    grades = sorted({g for by in share.values() for g in by}, key=int)
    easiest, hardest = grades[0], grades[-1]
    low = share.get(LOW_RATIO, {})
    somewhere = {r: by.get(hardest) for r, by in share.items()
                 if float(r) <= HIGH_RATIO_MAX and (by.get(hardest) or 0) >= HARDEST_SOMEWHERE_MIN}
    value = {"easiest": easiest, "hardest": hardest, f"easiest_at_{LOW_RATIO}": low.get(easiest),
             f"hardest_at_{LOW_RATIO}": low.get(hardest), "hardest_kept_at": sorted(somewhere, key=float)}
    met = (len(grades) >= 2 and (low.get(easiest) or 0) >= EASIEST_AT_LOW_MIN
           and low.get(hardest) is not None and low[hardest] <= HARDEST_AT_LOW_MAX and bool(somewhere))
    return {"value": value, "met": bool(met),
            "target": (f"at {LOW_RATIO}: easiest grade >= {EASIEST_AT_LOW_MIN:.0%}, hardest <= {HARDEST_AT_LOW_MAX:.0%}; "
                       f"hardest >= {HARDEST_SOMEWHERE_MIN:.0%} at some ratio <= {HIGH_RATIO_MAX}")}


def read_rows(data_dir: Path, split: str, compressed: Path) -> list[tuple[int, list, dict[str, str]]]:
    """``(grade, gold chain, {ratio: text})`` per compressed row, the chain regenerated from the data
    step's options; a compressed question the generator did not make is an error naming the row."""
    from extra_cot.study.data import CONFIG_NAME, SPLIT_ORDER, build_splits

    conf_path = data_dir / CONFIG_NAME
    conf = json.loads(conf_path.read_text(encoding="utf-8"))
    missing = [k for k in ("seed", *SPLIT_ORDER) if k not in conf]
    if missing:
        raise ValueError(f"{conf_path}: fields {missing} are missing (rerun the data step)")
    splits = build_splits(conf["seed"], {s: conf[s] for s in SPLIT_ORDER}, conf.get("task", "varied"))
    gold = {r["question"].strip(): r for r in splits[split]}
    rows = []
    for n, row in read_jsonl(compressed):
        made = gold.get(str(row.get("question", "")).strip())
        if made is None:
            raise ValueError(f"{compressed}:{n}: field 'question' is not a {split}-split question of {conf_path}")
        if not isinstance(row.get("compressed"), dict) or not isinstance(row.get("cot"), str):
            raise ValueError(  # noqa: TRY004 (a bad input file)
                f"{compressed}:{n}: fields 'compressed' (an object) and 'cot' (a string) are needed")
        rows.append((made["grade"], gold_chain(made["answer"]), {**row["compressed"], "1.0": row["cot"]}))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extra_cot.study.chain_kept", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the study's data folder (data_config.json: task, seed, sizes)")
    p.add_argument("--split", default="train", help="the compressed split (default train)")
    p.add_argument("--compressed", required=True, help="extra-cot compress output of that split")
    p.add_argument("--out", required=True, help="JSON {share: {ratio: {grade: share}}, n, check}")
    p.add_argument("--require", action="store_true", help="exit 1 when the check fails (after writing --out)")
    args = p.parse_args(argv)
    share, counts = kept_table(read_rows(Path(args.data), args.split, Path(args.compressed)))
    result = {"share": share, "n": counts, "check": check(share)}
    atomic_write_json(args.out, result)
    for ratio, by in share.items():
        print(f"chain kept at {ratio}: " + ", ".join(f"grade {g} {100 * v:.0f} % (n={counts[ratio][g]})"
                                                      for g, v in by.items()))
    print(f"Level-0 check ({result['check']['target']}): {'met' if result['check']['met'] else 'NOT met'}")
    if args.require and not result["check"]["met"]:
        print(f"extra_cot.study.chain_kept: the check failed, see {args.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
