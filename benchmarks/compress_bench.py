"""Stage 1 benchmark: math integrity, ratio accuracy and throughput per scorer, on GSM8K and MATH-500.

Datasets: the first ``--rows`` GSM8K train rows (worked solutions as CoTs) and every MATH-500 row
whose solution is longer than 300 characters and draws no ``[asy]`` figure (the solution is the
CoT, its ``\\boxed{}`` answer is mandatory). For each dataset and scorer: rows/s and source think
tokens/s (scoring + selection at all five ratios; model load excluded and reported apart),
time(all 5 ratios)/time(1 ratio), and per target ratio: broken math regions (outputs flagged by
``extra_cot.compress.integrity``, a pylatexenc parse independent of the segmenter, and the
problems counted), |realized − target| p95 and the share within ±0.05 over the (row, ratio) pairs
whose mandatory parts fit, and how many pairs cannot fit. Ratios counted with --tokenizer
(default SmolLM2-135M-Instruct's). The ``classifier`` rows use a tiny RANDOM Longformer built on
the spot (throughput only: no trained student ships offline). ``--adversarial`` adds the
hand-written adversarial sources of ``tests/fixtures/adversarial_stage1.jsonl`` (currency-looking
math, CJK, markdown, shredded environments, ...) as a dataset; for every dataset the gate's
rejections are also counted per reason (``gate_reasons``, the names ``compress`` logs).

``--long 1000,4000,16000,40000`` instead times one long CoT per size and shape (issue 37: Stage 1
must stay about linear in the CoT): ``varied``, generated traces of the demo's problems
(``extra_cot.demo.problems``, seed 0) joined until the size is reached, ``repetitive``, the
first trace repeated, and (``--long-shapes ...,gsm8k`` with ``--data``) GSM8K solutions joined
(currency dollars: the gate's reading used to re-walk the text per literal dollar); seconds per
row are scoring (heuristic) + selection at the four ratios + the gate, as ``extra-cot compress``
runs them, with the --tokenizer's counts (model load excluded)::

    .venv/bin/python benchmarks/compress_bench.py --long 1000,4000,16000,40000 \\
        --long-shapes varied,repetitive,gsm8k --data ../shared/data/gsm8k_train.jsonl

    .venv/bin/python benchmarks/compress_bench.py --data ../shared/data/gsm8k_train.jsonl --rows 500 \\
        --math500 ../shared/data/math500_test.jsonl --adversarial

``--score-batch-sizes 1,4,16`` times the model scorers' rows/s against the batch size instead
(benchmarks/compress_batch_bench.py). ``--ray --num-workers 1,2`` instead times the whole ``extra-cot compress`` command on the GSM8K rows,
single-process and on a local Ray cluster with 1, 2 … scorer actors, in the same run, and prints
rows/s and the speed-up (benchmarks/compress_ray_bench.py)::

    .venv/bin/python benchmarks/compress_bench.py --data ../shared/data/gsm8k_train.jsonl --rows 200 \\
        --scorers heuristic,lm --ray --num-workers 1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from extra_cot.compress.integrity import math_problems, problem_kind
from extra_cot.compress.models import load_tokenizer, make_counter
from extra_cot.compress.pipeline import CompressOptions, Source, read_gsm8k, score_units
from extra_cot.compress.scorers import ScorerOptions, make_scorer
from extra_cot.compress.select import compress_to_ratio, unit_token_counts
from extra_cot.fileio import read_jsonl

TARGETS = (0.2, 0.4, 0.6, 0.8)
ALL = (*TARGETS, 1.0)
#: The MATH-500 subset of issue 9: long enough to compress, no Asymptote figure code.
MATH_MIN_CHARS = 300
ADVERSARIAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "adversarial_stage1.jsonl"


def _pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def math500_sources(path: str) -> list[Source]:
    """MATH-500 rows with solution > 300 characters and no ``[asy]``, as compression sources."""
    sources = []
    for row in (r for _, r in read_jsonl(path)):
        sol = row["solution"]
        if len(sol) > MATH_MIN_CHARS and "[asy]" not in sol:
            answer = f"The final answer is $\\boxed{{{row['answer']}}}$."
            sources.append(Source(row["problem"].strip(), sol.strip(), answer, row["answer"]))
    return sources


def adversarial_sources(path: str) -> list[Source]:
    """The adversarial fixture's sources (no gold: nothing but the text is mandatory)."""
    return [Source("Compute the value.", row["source"], "", None) for _, row in read_jsonl(path)]


def gsm8k_sources(path: str, rows: int) -> list[Source]:
    return [read_gsm8k(r, f"{path}:{n}")[0] for (n, r), _ in zip(read_jsonl(path), range(rows))]


def _ratio_rows(dataset, name, per_ratio, common, reasons):
    out = []
    for key in [*(f"{r:g}" for r in TARGETS), "all"]:
        errors, broken, problems, misses = per_ratio[key]
        pairs = len(errors) + misses
        out.append({
            "dataset": dataset, "scorer": name, "ratio": key, "pairs": pairs, "broken_outputs": broken,
            "broken_regions": problems, "fitting": len(errors), "err_p95": round(_pct(errors, 0.95), 4),
            "within_0.05_pct": round(100 * sum(e <= 0.05 for e in errors) / max(1, len(errors)), 2),
            "gate_reasons": dict(sorted(reasons[key].items())), **common,
        })
    return out


def bench(dataset, name, scorer_opts, sources, tokenizer, count, opts):
    t0 = time.perf_counter()
    scorer = make_scorer(scorer_opts)
    load_s = time.perf_counter() - t0
    t_score = t_sel1 = t_sel5 = 0.0
    tokens = 0
    per_ratio = {k: ([], 0, 0, 0) for k in [*(f"{r:g}" for r in TARGETS), "all"]}
    reasons = {k: Counter() for k in per_ratio}
    for src in tqdm(sources, desc=f"{dataset}/{name}", unit="row", mininterval=10):
        t = time.perf_counter()
        units, scores = score_units(src, scorer, opts)
        counts = unit_token_counts(src.cot, units, tokenizer)
        t_score += time.perf_counter() - t
        tokens += count(src.cot)
        t = time.perf_counter()
        compress_to_ratio(src.cot, units, scores, counts, src.gold, 0.4, count, opts.select)
        t_sel1 += time.perf_counter() - t
        t = time.perf_counter()
        sels = {r: compress_to_ratio(src.cot, units, scores, counts, src.gold, r, count, opts.select) for r in ALL}
        t_sel5 += time.perf_counter() - t
        for r in TARGETS:
            sel, bad = sels[r], math_problems(src.cot, sels[r].text)
            for key in (f"{r:g}", "all"):
                errors, broken, problems, misses = per_ratio[key]
                reasons[key].update([problem_kind(bad[0])] if bad else [])
                if sel.fits:
                    errors.append(abs(sel.realized - r))
                per_ratio[key] = (errors, broken + bool(bad), problems + len(bad), misses + (not sel.fits))
    wall = t_score + t_sel5
    common = {"rows_per_s": round(len(sources) / wall, 2), "tokens_per_s": round(tokens / wall, 1),
              "time5_over_time1": round((t_score + t_sel5) / (t_score + t_sel1), 3), "load_s": round(load_s, 1)}
    return _ratio_rows(dataset, name, per_ratio, common, reasons)


def long_source(shape: str, tokens: int, count, gsm8k: str | None = None) -> Source:
    """A CoT of at least ``tokens`` target tokens: generated traces joined (``varied``), the first
    one repeated (``repetitive``), or GSM8K train solutions joined (``gsm8k``: currency dollars,
    ``<<..>>`` annotations; needs --data); grown by doubling, then bisected to the fewest pieces."""
    from extra_cot.demo.problems import generate

    if shape == "gsm8k":
        traces = [s.cot for s in gsm8k_sources(gsm8k, 4000)]
    else:
        traces = [r["cot"] for r in generate(2000, seed=0)]
    pieces = [traces[0]] * len(traces) if shape == "repetitive" else traces
    n = 1
    while count("\n".join(pieces[:n])) < tokens:
        n *= 2
        if n > len(pieces):
            pieces = pieces * 2
    lo, hi = n // 2, n  # the fewest traces that reach the size
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count("\n".join(pieces[:mid])) < tokens else (lo, mid)
    return Source("How many are there now?", "\n".join(pieces[:hi]), "", None)


def long_bench(sizes: list[int], tokenizer, count, shapes=("varied", "repetitive"), gsm8k: str | None = None) -> list[dict]:
    """Seconds per row of ``compress_source`` (heuristic scorer, four ratios, gate) per size and shape."""
    from extra_cot.compress.pipeline import compress_source
    from extra_cot.compress.scorers import HeuristicScorer

    results = []
    for shape in shapes:
        for size in sizes:
            src = long_source(shape, size, count, gsm8k)
            t = time.perf_counter()
            out = compress_source(src, HeuristicScorer(), tokenizer, count, CompressOptions())
            seconds = time.perf_counter() - t
            results.append({"shape": shape, "target_tokens": size, "tokens": count(src.cot), "chars": len(src.cot),
                            "seconds_per_row": round(seconds, 3), "written": sorted(out["compressed"]),
                            "realized": out["realized"]})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


def _scorer_options(name: str, tmp: str) -> ScorerOptions:
    model = None
    if name == "classifier":
        from extra_cot.compress.train import build_tiny_classifier
        from extra_cot.testing import build_tokenizer

        build_tokenizer(f"{tmp}/tok")
        model = str(build_tiny_classifier(f"{tmp}/clf", f"{tmp}/tok"))
    return ScorerOptions(name=name, model=model)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="GSM8K train JSONL")
    p.add_argument("--rows", type=int, default=500, help="GSM8K rows (from the top)")
    p.add_argument("--math500", default=None, help="MATH-500 test JSONL (rows > 300 chars, no [asy])")
    p.add_argument("--adversarial", nargs="?", const=str(ADVERSARIAL), default=None,
                   help="also the adversarial Stage 1 sources (default file: tests/fixtures/adversarial_stage1.jsonl)")
    p.add_argument("--scorers", default="heuristic,classifier,lm")
    p.add_argument("--tokenizer", default=None, help="target tokenizer dir (default: SmolLM2's)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--ray", action="store_true", help="time single-process vs `compress --ray` (GSM8K rows)")
    p.add_argument("--num-workers", default="1,2", help="--ray: actor counts to time")
    p.add_argument("--batch-size", type=int, default=8, help="--ray: rows per map_batches call")
    p.add_argument("--score-batch-sizes", default=None,
                   help="time the model scorers' rows/s at these --score-batch-size values, e.g. 1,4,16 "
                        "(GSM8K rows; size 1 is the baseline; benchmarks/compress_batch_bench.py)")
    p.add_argument("--long", default=None,
                   help="time one long CoT per size (target tokens, e.g. 1000,4000,16000,40000) and shape instead")
    p.add_argument("--long-shapes", default="varied,repetitive",
                   help="--long: which shapes (varied, repetitive, gsm8k: GSM8K solutions joined, needs --data)")
    p.add_argument("--table-from", default=None, help="only print the README summary of an earlier --json")
    args = p.parse_args(argv)
    if args.table_from:
        with open(args.table_from, encoding="utf-8") as fh:
            print(summary_table(json.load(fh)))
        return 0
    if args.long:
        tokenizer = load_tokenizer(args.tokenizer)
        sizes, shapes = [int(n) for n in args.long.split(",")], args.long_shapes.split(",")
        if "gsm8k" in shapes and not args.data:
            p.error("--long-shapes gsm8k joins GSM8K solutions: give --data")
        _print_table(long_bench(sizes, tokenizer, make_counter(tokenizer), shapes, args.data), args.json)
        return 0
    if args.ray:
        from compress_ray_bench import ray_bench

        if not args.data:
            p.error("--ray times GSM8K rows: give --data")
        results = ray_bench(args.data, args.rows, args.scorers.split(","),
                            [int(n) for n in args.num_workers.split(",")], args.tokenizer, args.batch_size)
        _print_table(results, args.json)
        return 0
    if args.score_batch_sizes:
        from compress_batch_bench import batch_bench

        if not args.data:
            p.error("--score-batch-sizes times GSM8K rows: give --data")
        with tempfile.TemporaryDirectory() as tmp:
            scorers = {n: _scorer_options(n, tmp) for n in args.scorers.split(",") if n != "heuristic"}
            results = batch_bench(gsm8k_sources(args.data, args.rows), scorers,
                                  [int(n) for n in args.score_batch_sizes.split(",")])
        _print_table(results, args.json)
        return 0
    datasets = {}
    if args.data:
        datasets["gsm8k"] = gsm8k_sources(args.data, args.rows)
    if args.math500:
        datasets["math500"] = math500_sources(args.math500)
    if args.adversarial:
        datasets["adversarial"] = adversarial_sources(args.adversarial)
    if not datasets:
        p.error("give --data (GSM8K), --math500 and/or --adversarial")
    tokenizer = load_tokenizer(args.tokenizer)
    count = make_counter(tokenizer)
    opts = CompressOptions()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scorers.split(","):
            scorer_opts = _scorer_options(name, tmp)
            for dataset, sources in datasets.items():
                rows = bench(dataset, name, scorer_opts, sources, tokenizer, count, opts)
                results.extend(rows)
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    _print_table(results, args.json)
    print()
    print(summary_table(results))
    return 0


def summary_table(results: list[dict]) -> str:
    """One line per (dataset, scorer): the per-ratio figures as ``0.2 / 0.4 / 0.6 / 0.8`` (README)."""
    keys = {}
    for r in results:
        keys.setdefault((r["dataset"], r["scorer"]), {})[r["ratio"]] = r
    lines = [("dataset | scorer | broken outputs 0.2/0.4/0.6/0.8 | err p95 0.2/0.4/0.6/0.8 (all) | "
             "within ±0.05 % 0.2/0.4/0.6/0.8 (all) | fitting pairs | rows/s | t(5)/t(1)"),
             " | ".join("---" for _ in range(8))]
    for (dataset, scorer), by in keys.items():
        per = [by[f"{t:g}"] for t in TARGETS]
        lines.append(" | ".join([
            dataset, scorer, " / ".join(str(r["broken_outputs"]) for r in per),
            " / ".join(f"{r['err_p95']:.3f}" for r in per) + f" ({by['all']['err_p95']:.3f})",
            " / ".join(f"{r['within_0.05_pct']:.1f}" for r in per) + f" ({by['all']['within_0.05_pct']:.1f})",
            f"{by['all']['fitting']} of {by['all']['pairs']}", f"{by['all']['rows_per_s']:g}",
            f"{by['all']['time5_over_time1']:.2f}"]))
    gate = [f"{d}/{s}: " + (", ".join(f"{k} {n}" for k, n in by["all"].get("gate_reasons", {}).items()) or "none")
            for (d, s), by in keys.items()]
    return "\n".join([*lines, "", "gate rejections by reason (all ratios): " + "; ".join(gate)])


def _print_table(results: list[dict], json_path: str | None) -> None:
    cols = list(results[0])
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for r in results:
        print(" | ".join(str(r[c]) for c in cols))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    sys.exit(main())
