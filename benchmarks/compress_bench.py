"""Stage 1 benchmark: throughput, ratio accuracy and formula integrity per scorer.

On the first N GSM8K train rows (worked solutions as CoTs), for each scorer: rows/s and source
think tokens/s (scoring + selection at all five ratios, model load excluded and reported apart),
time(all 5 ratios)/time(1 ratio), formula integrity % (outputs whose every formula is verbatim
from the source), |realized − target| percentiles where the mandatory parts fit, the share within
±0.05, and how many (row, ratio) pairs could not fit. Ratios counted with --tokenizer (default
SmolLM2-135M-Instruct's). The ``classifier`` row uses a tiny RANDOM Longformer built on the spot
(throughput only: no trained student ships offline).

    .venv/bin/python benchmarks/compress_bench.py --data /path/gsm8k_train.jsonl --rows 500

``--ray --num-workers 1,2`` instead times the whole ``extra-cot compress`` command single-process
and on a local Ray cluster with 1, 2 … scorer actors, in the same run, and prints rows/s and the
speed-up (see benchmarks/compress_ray_bench.py):

    .venv/bin/python benchmarks/compress_bench.py --data /path/gsm8k_train.jsonl --rows 200 \
        --scorers heuristic,lm --ray --num-workers 1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from tqdm import tqdm

from extra_cot.compress.models import load_tokenizer, make_counter
from extra_cot.compress.pipeline import CompressOptions, read_gsm8k, score_units
from extra_cot.compress.scorers import ScorerOptions, make_scorer
from extra_cot.compress.segment import integrity_violations
from extra_cot.compress.select import compress_to_ratio, unit_token_counts

TARGETS = (0.2, 0.4, 0.6, 0.8)
ALL = (*TARGETS, 1.0)


def _pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench(name, scorer_opts, sources, tokenizer, count, opts):
    t0 = time.perf_counter()
    scorer = make_scorer(scorer_opts)
    load_s = time.perf_counter() - t0
    t_score = t_sel1 = t_sel5 = 0.0
    errors, misses, intact, total_out, tokens = [], 0, 0, 0, 0
    for src in tqdm(sources, desc=name, unit="row", mininterval=10):
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
            sel = sels[r]
            total_out += 1
            intact += not integrity_violations(src.cot, sel.text)
            if sel.fits:
                errors.append(abs(sel.realized - r))
            else:
                misses += 1
    wall = t_score + t_sel5
    return {
        "scorer": name, "rows": len(sources), "load_s": round(load_s, 1),
        "rows_per_s": round(len(sources) / wall, 2), "tokens_per_s": round(tokens / wall, 1),
        "time5_over_time1": round((t_score + t_sel5) / (t_score + t_sel1), 3),
        "integrity_pct": round(100 * intact / total_out, 2),
        "err_p50": round(_pct(errors, 0.5), 4), "err_p90": round(_pct(errors, 0.9), 4),
        "err_p95": round(_pct(errors, 0.95), 4), "err_max": round(max(errors), 4),
        "within_0.05_pct": round(100 * sum(e <= 0.05 for e in errors) / len(errors), 2),
        "not_fitting": misses, "pairs": total_out,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="GSM8K train JSONL")
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--scorers", default="heuristic,classifier,lm")
    p.add_argument("--tokenizer", default=None, help="target tokenizer dir (default: SmolLM2's)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--ray", action="store_true", help="time single-process vs `compress --ray` instead")
    p.add_argument("--num-workers", default="1,2", help="--ray: actor counts to time")
    p.add_argument("--batch-size", type=int, default=8, help="--ray: rows per map_batches call")
    args = p.parse_args(argv)
    if args.ray:
        from compress_ray_bench import ray_bench

        results = ray_bench(args.data, args.rows, args.scorers.split(","),
                            [int(n) for n in args.num_workers.split(",")], args.tokenizer, args.batch_size)
        _print_table(results, args.json)
        return 0
    with open(args.data, encoding="utf-8") as fh:
        rows = [json.loads(line) for line, _ in zip(fh, range(args.rows))]
    sources = [read_gsm8k(r, f"{args.data}:{i + 1}")[0] for i, r in enumerate(rows)]
    tokenizer = load_tokenizer(args.tokenizer)
    count = make_counter(tokenizer)
    opts = CompressOptions()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scorers.split(","):
            model = None
            if name == "classifier":
                from extra_cot.compress.train import build_tiny_classifier
                from extra_cot.testing import build_tokenizer

                build_tokenizer(f"{tmp}/tok")
                model = str(build_tiny_classifier(f"{tmp}/clf", f"{tmp}/tok"))
            results.append(bench(name, ScorerOptions(name=name, model=model), sources, tokenizer, count, opts))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    _print_table(results, args.json)
    return 0


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
