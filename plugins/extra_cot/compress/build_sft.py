"""``extra-cot build-sft``: turn ``extra-cot compress`` output into the Stage 2 SFT rows.

Examples::

    extra-cot build-sft --input out/compressed.jsonl --output-dir data/sft
    extra-cot build-sft --input out/compressed.jsonl --output-dir data/sft \\
        --policy-ratios data/rl/gt_ratios.jsonl --tokenizer /models/Qwen3-1.7B --name gsm8k_mix

Writes ``DIR/<name>.jsonl`` (rows ``{question, cot, answer, compressed{0.2..0.8}, gt_ratio?}``,
the contract of ``extra_cot.sft.mixture``), merges ``DIR/dataset_info.json`` with the entry of
``extra_cot.sft.mixture.dataset_info_entry``, saves ``DIR/<name>.build_sft.json`` (config and
the per-bucket table) and prints the table. ``--policy-ratios``: JSONL rows
``{"question", "gt_ratio"}`` (e.g. from the RL sweep) or one JSON object ``{question: ratio}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

from extra_cot.compress.jsonl import run_command
from extra_cot.fileio import atomic_write_json, atomic_write_jsonl, read_jsonl, read_jsonl_inputs
from extra_cot.quotas import parse_quotas
from extra_cot.sft.mixture import (
    BadRowError,
    MixtureConfig,
    dataset_info_entry,
    expand_row,
    parse_policy_share,
    policy_key,
    repeat_for_share,
    select_policy_rows,
    validate_row,
)
from extra_cot.tokens import FIXED_RATIOS, POLICY_TOKEN

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extra-cot build-sft", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True,
                   help="JSONL written by `extra-cot compress`: a file, a directory of *.jsonl parts or a glob")
    p.add_argument("--output-dir", required=True, help="LLaMA-Factory dataset_dir")
    p.add_argument("--name", default="extra_cot_sft", help="dataset name (file <name>.jsonl and dataset_info key)")
    p.add_argument("--policy-ratios", default=None, help="gt_ratio per question (JSONL rows or a JSON object)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer dir for the think-token column (default: SmolLM2-135M-Instruct's)")
    p.add_argument("--untagged-share", type=float, default=None,
                   help="share of rows whose 1.0 example carries no control token, written to the dataset "
                   "entry (default: the paper's 0.5, extra_cot.sft.mixture.MixtureConfig)")
    p.add_argument("--ratios", default=None,
                   help="comma list of fixed ratios that get an example per row, written to the dataset entry "
                   "(default: all of 0.2,0.4,0.6,0.8,1.0; '1.0' with --untagged-share 1 = full traces without "
                   "control tokens, a no-control baseline)")
    p.add_argument("--policy-quotas", default=None,
                   help="share of each gt_ratio among policy examples: 'method' (the paper's 18/24/26/22/10 %%, "
                   "default), 'none' (every row with a gt_ratio) or e.g. '0.2:0.3,0.4:0.7'")
    repeat = p.add_mutually_exclusive_group()
    repeat.add_argument("--policy-repeat", type=int, default=None,
                        help="copies of each kept policy example, written to the dataset entry (default 1)")
    repeat.add_argument("--policy-share", type=_share, default=None,
                        help="choose --policy-repeat so that policy examples come nearest this share of all the "
                        "set's examples ('method': the paper's 10k of ~58k rows, 0.172; 'none': once each)")
    return p


def _share(text: str) -> float | None:
    try:
        return parse_policy_share(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def mixture_from_args(args) -> MixtureConfig:
    """The dataset entry's mixture: the paper's defaults unless a flag says otherwise."""
    given = {}
    if args.untagged_share is not None:
        given["untagged_share"] = args.untagged_share
    if args.ratios is not None:
        given["ratios"] = tuple(float(r) for r in args.ratios.split(",") if r.strip())
    if args.policy_quotas is not None:
        given["policy_quotas"] = parse_quotas(args.policy_quotas)
    if args.policy_repeat is not None:
        given["policy_repeat"] = args.policy_repeat
    return MixtureConfig(**given)


def example_counts(rows: list[dict], mixture: MixtureConfig) -> tuple[int, int]:
    """(fixed-ratio examples, policy examples once each) that ``mixture`` makes of valid SFT ``rows``."""
    keep = select_policy_rows(rows, mixture)
    once = dataclasses.replace(mixture, policy_repeat=1)
    controls = [e.control for r in rows for e in expand_row(r, once, policy_key(r) in keep)]
    policy = controls.count(POLICY_TOKEN)
    return len(controls) - policy, policy


def load_policy_ratios(path: str | None) -> dict[str, float]:
    """question -> gt_ratio; a value that is not a fixed ratio raises naming the row."""
    if path is None:
        return {}
    text = Path(path).read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSONL
    if isinstance(whole, dict) and "question" not in whole:
        pairs = list(whole.items())
    else:
        pairs = [(_field(row, "question", path, n), _field(row, "gt_ratio", path, n)) for n, row in read_jsonl(path)]
    out = {}
    for question, ratio in pairs:
        if not any(abs(float(ratio) - r) < 1e-9 for r in FIXED_RATIOS):
            raise ValueError(f"{path}: gt_ratio {ratio!r} for {question[:60]!r} is not one of {list(FIXED_RATIOS)}")
        out[question.strip()] = float(ratio)
    return out


def _field(row: dict, name: str, path: str, n: int):
    if row.get(name) is None:
        raise ValueError(f"{path}:{n}: field {name!r} is missing")
    return row[name]


def sft_row(row: dict, gt_ratio: float | None) -> tuple[dict, str | None]:
    """The SFT row for one compress row, and a note when ``gt_ratio`` had to be dropped."""
    compressed = {k: v for k, v in (row.get("compressed") or {}).items() if float(k) < 1.0}
    out = {"question": row.get("question"), "cot": row.get("cot"), "answer": row.get("answer"),
           "compressed": compressed}
    note = None
    if gt_ratio is not None:
        if gt_ratio == 1.0 or f"{gt_ratio:g}" in compressed:
            out["gt_ratio"] = gt_ratio
        else:
            note = "gt_ratio_without_text"
    return out, note


def bucket_table(rows: list[dict], count) -> list[dict]:
    """Per bucket: rows, mean realized ratio, mean think tokens, filtered rows and why."""
    kept, realized, tokens = Counter(), defaultdict(list), defaultdict(list)
    filtered: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        tokens["1"].append(count(row["cot"]))
        kept["1"] += 1
        realized["1"].append(1.0)
        for key, text in row["compressed"].items():
            kept[key] += 1
            realized[key].append(row.get("realized", {}).get(key, float("nan")))
            tokens[key].append(count(text))
        for key, why in (row.get("dropped") or {}).items():
            filtered[key][why.split("(")[0]] += 1
    table = []
    for r in FIXED_RATIOS:
        key = f"{r:g}"
        n = kept[key]
        table.append({"bucket": key, "rows": n,
                      "mean_realized": round(sum(realized[key]) / n, 4) if n else None,
                      "mean_think_tokens": round(sum(tokens[key]) / n, 1) if n else None,
                      "filtered": dict(filtered[key])})
    return table


def format_table(table: list[dict]) -> str:
    lines = [f"{'bucket':>6} {'rows':>6} {'realized':>9} {'think_tok':>9}  filtered (target ratio: reason=n)"]
    for t in table:
        why = ", ".join(f"{k}={v}" for k, v in sorted(t["filtered"].items())) or "-"
        lines.append(f"{t['bucket']:>6} {t['rows']:>6} {t['mean_realized'] if t['mean_realized'] is not None else '-':>9} "
                     f"{t['mean_think_tokens'] if t['mean_think_tokens'] is not None else '-':>9}  {why}")
    return "\n".join(lines)


def run(args) -> tuple[list[dict], Counter]:
    from extra_cot.compress.models import load_tokenizer, make_counter

    mixture = mixture_from_args(args)
    policy = load_policy_ratios(args.policy_ratios)
    rows, out_rows, stats = [], [], Counter()
    for path, n, row in read_jsonl_inputs(args.input):
        sft, note = sft_row(row, policy.get(str(row.get("question", "")).strip()))
        if note:
            stats[note] += 1
        try:
            validate_row(sft, f"{path}:{n}")
        except BadRowError as exc:
            logger.warning("skipping row: %s", exc)
            stats["bad_row"] += 1
            continue
        rows.append(row)
        out_rows.append(sft)
        stats["gt_ratio"] += "gt_ratio" in sft
    if args.policy_share is not None:
        n_fixed, n_policy = example_counts(out_rows, mixture)
        mixture.policy_repeat = repeat_for_share(n_fixed, n_policy, args.policy_share)
        stats["fixed_examples"], stats["policy_examples"] = n_fixed, n_policy
        stats["policy_repeat"] = mixture.policy_repeat
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / f"{args.name}.jsonl"
    atomic_write_jsonl(data_path, out_rows)
    info_path = out_dir / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info[args.name] = dataset_info_entry(data_path.name, mixture)
    atomic_write_json(info_path, info)
    table = bucket_table(rows, make_counter(load_tokenizer(args.tokenizer)))
    atomic_write_json(out_dir / f"{args.name}.build_sft.json", {"args": vars(args), "table": table, "stats": dict(stats)})
    return table, stats


def _report(result: tuple[list[dict], Counter]) -> None:
    table, stats = result
    print(format_table(table))
    print("rows written:", table[-1]["rows"], "| " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), run, argv, _report)
