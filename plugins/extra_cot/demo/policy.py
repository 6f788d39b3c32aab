"""Demo step ``policy-targets``: a proxy γ*(x) for the Stage 2 policy rows [R].

In the paper the policy rows' target γ*(x) comes from sweeping the SFT model (Stage 3 data),
which the demo only has after training. So that ``<COMP_AUTO>`` is not an unseen token at
evaluation, the demo labels each SFT question with a cheap proxy taken from Stage 1 alone:
the lowest compressed ratio whose text still holds every intermediate result of the full chain
of thought (every number that follows an ``=``), else 1.0. Questions with more steps get
higher targets. The real γ* (from the sweep) is what ``extra-cot build-rl`` writes for RL.

``python -m extra_cot.demo.policy --compressed runs/demo/stage1/compressed.jsonl \\
    --out runs/demo/stage1/policy_targets.jsonl``
writes ``{"question", "gt_ratio"}`` rows (``extra-cot build-sft --policy-ratios``).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

from extra_cot.fileio import atomic_write_jsonl, read_jsonl
from extra_cot.tokens import FIXED_RATIOS

_RESULT = re.compile(r"=\s*\$?(-?\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def intermediate_results(cot: str) -> set[str]:
    """Numbers right after an ``=`` in a chain of thought (its intermediate results)."""
    return set(_RESULT.findall(cot.replace(",", "")))


def proxy_gt_ratio(cot: str, compressed: dict[str, str]) -> float:
    """Lowest ratio whose compression keeps every intermediate result of ``cot``; else 1.0."""
    needed = intermediate_results(cot)
    for ratio in FIXED_RATIOS[:-1]:
        text = compressed.get(f"{ratio:g}") or compressed.get(f"{ratio:.1f}")
        if text is not None and needed <= set(_NUMBER.findall(text.replace(",", ""))):
            return ratio
    return 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m extra_cot.demo.policy", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compressed", required=True, help="JSONL written by `extra-cot compress`")
    parser.add_argument("--out", required=True, help="JSONL of {question, gt_ratio}")
    args = parser.parse_args(argv)
    rows = []
    for n, row in read_jsonl(args.compressed):
        if not isinstance(row.get("cot"), str) or not isinstance(row.get("compressed"), dict):
            raise ValueError(f"{args.compressed}:{n}: need 'cot' and 'compressed' (extra-cot compress output)")  # noqa: TRY004 (a bad input file, reported like every other input error)
        rows.append({"question": row["question"], "gt_ratio": proxy_gt_ratio(row["cot"], row["compressed"])})
    atomic_write_jsonl(args.out, rows)
    counts = Counter(r["gt_ratio"] for r in rows)
    print(f"wrote {args.out}: {len(rows)} targets; " + ", ".join(f"{k:g}: {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
