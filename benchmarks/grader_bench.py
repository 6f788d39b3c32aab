"""Grader benchmark: agreement and speed of ``extra_cot.grading`` vs plain math-verify and verl.

The same (response, gold) pairs go to every scorer; the response is always
``"... so the final answer is \\boxed{PRED}."``. Pair categories (expected verdict):

* ``identical``: PRED is the gold string (True);
* ``rewrite``: an equivalent rewrite of the gold (decimal/fraction, ``\\dfrac``, ``\\left``,
  ``\\$``, thousands commas, ``x = ``, spacing) (True);
* ``wrong``: another item's gold or gold + 1 (False);
* ``hostile``: power towers, 100k-digit numbers, deep nesting, ``__import__`` (False).

Scorers: ours (``grading.grade``); plain math-verify ``verify(parse(gold), parse(response))``
with its default signal timeouts, in the main thread and in a worker thread (where verl's reward
workers call scorers); verl's MATH scorer ``verl.utils.reward_score.math_reward.compute_score``
(the lm-eval string normaliser verl uses for MATH data sources).

Usage::

    python benchmarks/grader_bench.py --math500 data/math500_test.jsonl --gsm8k data/gsm8k_test.jsonl \\
        --amc data/amc23_test.jsonl [--limit 200] [--output-json bench.json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

HOSTILE = [
    r"10^{10^{10^{10^{10}}}}",
    "9" * 100_000,
    "{" * 3000 + "1" + "}" * 3000,
    "__import__('os').system('true')",
    r"2^{2^{2^{2^{2^{2}}}}}",
]


def load_golds(args) -> list[str]:
    from extra_cot.eval.datasets import load_items, parse_dataset_spec

    golds = []
    for fmt, path in (("math", args.math500), ("gsm8k", args.gsm8k), ("amc", args.amc)):
        if path:
            items = load_items(parse_dataset_spec(f"{fmt}={path}:{fmt}"), args.limit)
            golds += [item.gold for item in items]
    return golds


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else None
    except (ValueError, ZeroDivisionError):
        return None


def rewrites(gold: str) -> list[str]:
    """Equivalent surface forms of ``gold`` (only rules that certainly keep the value)."""
    out = []
    num = _number(gold)
    if num is not None:
        out += [f"{gold}.0" if "." not in gold else f"{gold}0", f"\\${gold}"]
        if num.denominator == 1 and abs(num) >= 1000:
            out.append(f"{int(num):,}")
        if num.denominator == 1:
            out.append(f"x = {gold}")
    frac = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", gold)
    if frac:
        a, b = int(frac.group(2)), int(frac.group(3))
        out += [f"{frac.group(1)}\\dfrac{{{a}}}{{{b}}}", f"{frac.group(1)}{a}/{b}"]
        if b and 10**6 % b == 0:
            out.append(str(float(Fraction(a, b) * (-1 if frac.group(1) else 1))))
    if "\\left" in gold:
        out.append(gold.replace("\\left", "").replace("\\right", ""))
    if "\\frac" in gold and not frac:
        out.append(gold.replace("\\frac", "\\dfrac"))
    if "," in gold and num is None and not re.search(r"\d,(\\!)?\d{3}", gold):  # not 10,\!080
        out.append(re.sub(r",\s*", ", ", gold))
    return [r for r in out if r != gold]


def build_pairs(golds: list[str], seed: int = 0) -> list[tuple[str, str, str, bool]]:
    """(category, pred, gold, expected)."""
    rng = random.Random(seed)
    pairs = [("identical", g, g, True) for g in golds]
    pairs += [("rewrite", r, g, True) for g in golds for r in rewrites(g)]
    for g in golds:
        num = _number(g)
        other = rng.choice(golds)
        if num is not None:
            pairs.append(("wrong", str(num + 1) if num.denominator == 1 else str(float(num + 1)), g, False))
        elif other != g and _number(other) is None:
            pairs.append(("wrong", other, g, False))
    pairs += [("hostile", h, g, False) for h in HOSTILE for g in golds[:2]]
    return pairs


def response(pred: str) -> str:
    return f"Let me think... so the final answer is \\boxed{{{pred}}}."


def ours(pred: str, gold: str) -> bool:
    from extra_cot.grading import grade

    return grade(response(pred), gold)


def plain_math_verify(pred: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"\\boxed{{{gold}}}"), parse(response(pred))))
    except Exception:  # noqa: BLE001 - plain use raises on some inputs; count as wrong like a caller would
        return False


_worker = ThreadPoolExecutor(max_workers=1)


def plain_math_verify_in_thread(pred: str, gold: str) -> bool:
    return _worker.submit(plain_math_verify, pred, gold).result()


def verl_math(pred: str, gold: str) -> bool:
    from verl.utils.reward_score.math_reward import compute_score

    return compute_score(response(pred), gold) == 1.0


SCORERS = {
    "extra_cot.grading": ours,
    "math-verify (main thread)": plain_math_verify,
    "math-verify (worker thread)": plain_math_verify_in_thread,
    "verl math_reward": verl_math,
}


def run(scorer, pairs) -> tuple[list[bool], list[float]]:
    verdicts, times = [], []
    for _, pred, gold, _ in pairs:
        start = time.perf_counter()
        verdicts.append(scorer(pred, gold))
        times.append(time.perf_counter() - start)
    return verdicts, times


def table(pairs, results) -> str:
    cats = sorted({p[0] for p in pairs})
    counts = {c: sum(p[0] == c for p in pairs) for c in cats}
    head = (
        "| scorer | "
        + " | ".join(f"{c} (n={counts[c]})" for c in cats)
        + " | all | agree w/ ours | mean ms | p99 ms | max s | time vs ours |\n|"
        + "---|" * (len(cats) + 7)
    )
    lines = [head]
    base_verdicts, base_times = results["extra_cot.grading"]
    for name, (verdicts, times) in results.items():
        right = [v == p[3] for v, p in zip(verdicts, pairs)]
        per_cat = [100 * statistics.mean(r for r, p in zip(right, pairs) if p[0] == c) for c in cats]
        agree = 100 * statistics.mean(a == b for a, b in zip(verdicts, base_verdicts))
        p99 = sorted(times)[int(0.99 * (len(times) - 1))]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{x:.1f}%" for x in per_cat)
            + f" | {100 * statistics.mean(right):.1f}% | "
            f"{agree:.1f}% | {1000 * statistics.mean(times):.2f} | {1000 * p99:.1f} | {max(times):.2f} | "
            f"{sum(times) / sum(base_times):.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--math500"), p.add_argument("--gsm8k"), p.add_argument("--amc")
    p.add_argument("--limit", type=int, default=None, help="first N items of each file")
    p.add_argument("--scorers", default=",".join(SCORERS), help=f"comma list of {list(SCORERS)}")
    p.add_argument("--output-json", default=None)
    args = p.parse_args(argv)
    golds = load_golds(args)
    if not golds:
        p.error("give at least one of --math500/--gsm8k/--amc")
    pairs = build_pairs(golds)
    names = [n.strip() for n in args.scorers.split(",")]
    unknown = [n for n in names if n not in SCORERS]
    if unknown or "extra_cot.grading" not in names:
        p.error(f"--scorers must include extra_cot.grading; unknown {unknown}; valid {list(SCORERS)}")
    for name in names:  # warm-up imports so they do not count as grading time
        SCORERS[name](r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}")
    results = {}
    for name in names:
        print(f"scoring {len(pairs)} pairs with {name} ...", file=sys.stderr, flush=True)
        results[name] = run(SCORERS[name], pairs)
    print(table(pairs, results))
    disagreements = [
        (p[0], p[1][:60], p[2][:60], results["extra_cot.grading"][0][i])
        for i, p in enumerate(pairs)
        if results["extra_cot.grading"][0][i] != p[3]
    ]
    print(f"\nextra_cot.grading misses vs expected: {len(disagreements)}")
    for row in disagreements[:20]:
        print("  ", row)
    if args.output_json:
        Path(args.output_json).write_text(
            json.dumps({name: {"verdicts": v, "times": t} for name, (v, t) in results.items()}, indent=1)
        )
    _worker.shutdown()
    return 0


if __name__ == "__main__":
    assert threading.current_thread() is threading.main_thread()
    sys.exit(main())
