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

``--hostile`` adds the hostile-corpus row (issue 37): whole responses of 10,000, 50,000 and
200,000 characters (:func:`hostile_corpus`: runs of digits, spaces and newlines after "answer is",
repeated ``\\boxed{`` and ``</think>``, unclosed and nested LaTeX, long numbers with words, ...)
graded by ``extra_cot.grading.grade``, each case 3 times: the worst case's seconds per call (wall
clock, and CPU seconds of the grading thread, which other processes on the machine do not
inflate) and the slowest single call, printed against the pairs' row (target: under 0.05 s at
200,000 characters).

Usage::

    python benchmarks/grader_bench.py --math500 data/math500_test.jsonl --gsm8k data/gsm8k_test.jsonl \\
        --amc data/amc23_test.jsonl [--limit 200] [--scorers extra_cot.grading] [--hostile] \\
        [--output-json bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

#: Hostile *answers* for the pair table (each boxed in a normal response).
HOSTILE = [
    r"10^{10^{10^{10^{10}}}}",
    "9" * 100_000,
    "{" * 3000 + "1" + "}" * 3000,
    "__import__('os').system('true')",
    r"2^{2^{2^{2^{2^{2}}}}}",
]


#: Response lengths of the hostile-corpus row: a short output, a long one, the grader's scan cap
#: (``grading.MAX_SCAN_CHARS``; longer responses are scanned in their last 200,000 characters).
HOSTILE_SIZES = (10_000, 50_000, 200_000)


def _fill(head: str, unit: str, tail: str, size: int) -> str:
    """``head + unit * k + tail``, exactly ``size`` characters (the repeated part is cut to fit)."""
    body = size - len(head) - len(tail)
    return head + (unit * (body // len(unit) + 1))[:body] + tail


def hostile_corpus(size: int) -> dict[str, tuple[str, str]]:
    """Whole responses of ``size`` characters built to make a regex or a scan re-read a run:
    name -> (response, gold). Each targets one pattern of ``extra_cot.grading`` (or all of them);
    none holds the right answer, so a correct grader says False to every one."""
    k = size // 16
    cases = {
        "digits after 'answer is'": ("The answer is ", "7", "!"),  # number-then-words was quadratic here
        "digits then words": ("The answer is " + "7" * (size // 2) + " ", "apples ", "!"),
        "long numbers with words": ("The answer is ", "12345678901234567890 apples ", "9!"),
        "newlines after 'answer is'": ("The answer is", "\n", ""),
        "spaces and colons after 'answer is'": ("The answer is", " : ", "\n"),
        "repeated 'answer is'": ("", "the answer is ", ""),
        "'####' then newlines": ("####", "\n", ""),
        "run of '#'": ("", "#", ""),
        "repeated \\boxed{": ("", "\\boxed{", ""),
        "\\boxed then spaces": ("", "\\boxed" + " " * 64, ""),
        "unclosed box of braces": ("\\boxed{", "{", ""),
        "backslash run in a box": ("\\boxed{", "\\", ""),
        "nested \\frac (closed)": ("\\boxed{" + "\\frac{" * k + "1", "}{2}", "}"),
        "nested \\sqrt (unclosed)": ("", "\\boxed{\\sqrt{", ""),
        "\\text{ then spaces": ("\\boxed{\\text{", " ", "{}}}"),
        "box of digits": ("\\boxed{", "9", "}"),
        "box of 1,000,000,...": ("\\boxed{1", ",000", "}"),
        "degree sign then spaces": ("\\boxed{30^", " ", "\\circ!}"),
        "repeated </think>": ("<think>", "</think>", ""),
        "dollar run": ("", "$", ""),
    }
    corpus = {name: (_fill(head, unit, tail, size), "1") for name, (head, unit, tail) in cases.items()}
    rng = random.Random(size)
    pieces = [unit for _, unit, _ in cases.values()] + ["The answer is 7", "#### 7", "\\boxed{7}", "}"]
    mixed = "".join(rng.choice(pieces) for _ in range(size // 4))
    corpus["mixture of all"] = (mixed[:size], "1")
    return corpus


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


#: Target of the hostile-corpus row (issue 37): worst seconds per call at 200,000 characters.
HOSTILE_TARGET_S = 0.05


def run_hostile(sizes=HOSTILE_SIZES, repeat: int = 3) -> dict[int, dict]:
    """Per size: calls, mean wall seconds per call, and the worst case's seconds per call (the
    fastest of its ``repeat`` runs, wall and CPU: a preempted run measures the machine, not the
    grader), the slowest single call, and the cases graded correct (none should be)."""
    from extra_cot.grading import grade

    out = {}
    for size in sizes:
        walls, per_case, correct = [], [], set()
        for name, (resp, gold) in hostile_corpus(size).items():
            runs = []
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.thread_time()
                if grade(resp, gold):
                    correct.add(name)
                runs.append((time.perf_counter() - wall, time.thread_time() - cpu))
            walls += [w for w, _ in runs]
            per_case.append((min(w for w, _ in runs), min(c for _, c in runs), name))
        worst = max(per_case)
        out[size] = {
            "calls": len(walls),
            "mean_s": statistics.mean(walls),
            "worst_s": worst[0],
            "worst_case": worst[2],
            "worst_cpu_s": max(c for _, c, _ in per_case),
            "max_s": max(walls),
            "graded_correct": sorted(correct),
        }
    return out


def hostile_table(times: list[float], hostile: dict[int, dict]) -> str:
    """The hostile-corpus rows under the pairs' row of ``extra_cot.grading`` (its ``times``)."""
    lines = [
        (
            "| extra_cot.grading on | chars per response | calls | mean ms | worst s/call | worst CPU s/call | "
            "slowest call s | worst case |"
        ),
        "|---|---|---|---|---|---|---|---|",
        (
            f"| the pairs above (baseline) | < 1,000 | {len(times)} | {1000 * statistics.mean(times):.2f} | "
            f"| | {max(times):.3f} | |"
        ),
    ]
    for size, row in hostile.items():
        lines.append(
            f"| hostile corpus | {size:,} | {row['calls']} | {1000 * row['mean_s']:.2f} | {row['worst_s']:.3f} | "
            f"{row['worst_cpu_s']:.3f} | {row['max_s']:.3f} | {row['worst_case']} |"
        )
    top = hostile[max(hostile)]
    verdict = {True: "met", False: "MISSED"}
    lines += [
        "\nworst s/call: the slowest case, each case timed as the fastest of 3 runs; slowest call: any run.",
        (
            f"target: worst < {HOSTILE_TARGET_S} s per call at {max(hostile):,} characters: "
            f"{verdict[top['worst_s'] < HOSTILE_TARGET_S]} (wall), "
            f"{verdict[top['worst_cpu_s'] < HOSTILE_TARGET_S]} (CPU); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work inflates wall time)"
        ),
    ]
    wrong = {size: row["graded_correct"] for size, row in hostile.items() if row["graded_correct"]}
    lines.append(f"hostile responses graded correct (should be none): {wrong or 'none'}")
    return "\n".join(lines)


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
    p.add_argument(
        "--hostile", action="store_true", help="also the hostile-corpus row (10k/50k/200k characters)"
    )
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
    hostile = None
    if args.hostile:
        print("grading the hostile corpus ...", file=sys.stderr, flush=True)
        hostile = run_hostile()
        print("\n" + hostile_table(results["extra_cot.grading"][1], hostile))
    disagreements = [
        (p[0], p[1][:60], p[2][:60], results["extra_cot.grading"][0][i])
        for i, p in enumerate(pairs)
        if results["extra_cot.grading"][0][i] != p[3]
    ]
    print(f"\nextra_cot.grading misses vs expected: {len(disagreements)}")
    for row in disagreements[:20]:
        print("  ", row)
    if args.output_json:
        record = {name: {"verdicts": v, "times": t} for name, (v, t) in results.items()}
        if hostile is not None:
            record["hostile"] = hostile
        Path(args.output_json).write_text(json.dumps(record, indent=1))
    _worker.shutdown()
    return 0


if __name__ == "__main__":
    assert threading.current_thread() is threading.main_thread()
    sys.exit(main())
