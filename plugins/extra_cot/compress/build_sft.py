"""``extra-cot build-sft``: turn ``extra-cot compress`` output into the Stage 2 SFT rows.

Examples::

    extra-cot build-sft --input out/compressed.jsonl --output-dir data/sft
    extra-cot build-sft --input out/compressed.jsonl --output-dir data/sft \\
        --policy-ratios data/rl/gt_ratios.jsonl --tokenizer /models/Qwen3-1.7B --name gsm8k_mix

Writes ``DIR/<name>.jsonl`` (rows ``{question, cot, answer, compressed{0.2..0.8}, gt_ratio?}``,
the contract of ``extra_cot.sft.mixture``), ``DIR/<name>.skipped.jsonl`` (file, line and reason of
each row left out: bad_row, duplicate, too_long over --cutoff-len), ``DIR/<name>.build_sft.json``
(config and the per-bucket table), and last merges ``DIR/dataset_info.json`` with the entry of
``extra_cot.sft.mixture.dataset_info_entry``: every file is written whole (atomically) after every
row was read and checked, so a failed run registers nothing. Prints the table. ``--policy-ratios``: JSONL rows
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
from extra_cot.fileio import (
    SIDE_FILE_SUFFIXES,
    atomic_write_json,
    atomic_write_jsonl,
    read_jsonl,
    read_jsonl_inputs,
    refuse_overlap,
    require_text,
)
from extra_cot.quotas import parse_quotas
from extra_cot.sft.mixture import (
    BadRowError,
    Example,
    MixtureConfig,
    dataset_info_entry,
    expand_row,
    parse_policy_share,
    policy_key,
    repeat_for_share,
    select_policy_rows,
    validate_row,
)
from extra_cot.tokens import FIXED_RATIOS, POLICY_TOKEN, ratio_value

logger = logging.getLogger(__name__)

#: ``cutoff_len`` of examples/qwen3-1.7b_mixed.yaml (a test checks they agree): LLaMA-Factory cuts
#: a longer example silently, losing its answer and the end of its think block.
RECIPE_CUTOFF_LEN = 6144


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extra-cot build-sft", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True,
                   help="JSONL written by `extra-cot compress`: a file, a directory of *.jsonl parts or a glob")
    p.add_argument("--output-dir", required=True, help="LLaMA-Factory dataset_dir")
    p.add_argument("--name", default="extra_cot_sft", help="dataset name (file <name>.jsonl and dataset_info key)")
    p.add_argument("--policy-ratios", default=None, help="gt_ratio per question (JSONL rows or a JSON object)")
    p.add_argument("--tokenizer", default=None,
                   help="the trained model's tokenizer (folder or hub id), for the think-token column and "
                   "--cutoff-len (default: SmolLM2-135M-Instruct's)")
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
    p.add_argument("--cutoff-len", type=int, default=RECIPE_CUTOFF_LEN,
                   help="skip rows whose longest example (system + user + response as the qwen3 chat template "
                   "lays it out, counted with --tokenizer) is over this many tokens, logging each in "
                   "DIR/<name>.skipped.jsonl, instead of letting LLaMA-Factory truncate them; match the "
                   f"training YAML's cutoff_len (default {RECIPE_CUTOFF_LEN}, examples/qwen3-1.7b_mixed.yaml); "
                   "0 = no filter")
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
        given["ratios"] = tuple(ratio_value(r.strip(), "--ratios") for r in args.ratios.split(",") if r.strip())
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
    """question -> gt_ratio; a value that is not a fixed ratio, or one question given two ratios,
    raises naming the file, row and field."""
    if path is None:
        return {}
    try:
        whole = json.loads(Path(path).read_bytes())
    except UnicodeDecodeError:
        whole = None  # reported by the row reader, with the line
    except json.JSONDecodeError:
        whole = None  # JSONL
    if isinstance(whole, dict) and "question" not in whole:
        pairs = [(q, f"{path}: question {str(q)[:60]!r}", r) for q, r in whole.items()]
    else:
        pairs = [(require_text(row, "question", f"{path}:{n}"), f"{path}:{n}", row.get("gt_ratio"))
                 for n, row in read_jsonl(path)]
    out: dict[str, float] = {}
    for question, where, value in pairs:
        ratio = ratio_value(value, f"{where}: field 'gt_ratio'")
        key = question.strip()
        if out.get(key, ratio) != ratio:
            raise ValueError(f"{where}: field 'gt_ratio': {question[:60]!r} was given {out[key]} earlier, now {ratio}")
        out[key] = ratio
    return out


def sft_row(row: dict, where: str, policy: dict[str, float]) -> tuple[dict, str | None]:
    """The SFT row for one compress row, and a note when its ``gt_ratio`` had to be dropped.

    Raises :class:`BadRowError` naming ``where`` and the field for a row the SFT data cannot hold:
    the checks of :func:`extra_cot.sft.mixture.validate_row`, and ``compressed`` / ``realized`` /
    ``dropped`` that are not objects keyed by a fixed ratio. A ``compressed`` text at 1.0 (a
    compression that landed at full length) is left out: the row's ``cot`` is its 1.0 example.
    """
    compressed = {}
    for key, text in _ratio_map(row, "compressed", where).items():
        if ratio_value(key, "") < 1.0:
            compressed[key] = text
    for name, kind in (("realized", (int, float)), ("dropped", str)):
        for key, value in _ratio_map(row, name, where).items():
            if not isinstance(value, kind) or isinstance(value, bool):
                raise BadRowError(f"{where}, field '{name}.{key}': got {type(value).__name__} {value!r}")
    out = {"question": row.get("question"), "cot": row.get("cot"), "answer": row.get("answer"),
           "compressed": compressed}
    validate_row(out, where)
    gt_ratio, note = policy.get(out["question"].strip()), None
    if gt_ratio is not None:
        if gt_ratio == 1.0 or f"{gt_ratio:g}" in compressed:
            out["gt_ratio"] = gt_ratio
        else:
            note = "gt_ratio_without_text"
    return out, note


def _ratio_map(row: dict, name: str, where: str) -> dict:
    """``row[name]`` checked to be an object whose keys are fixed ratios (absent or null: empty)."""
    value = row.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRowError(f"{where}, field {name!r}: expected an object of ratio -> value, got {type(value).__name__}")
    for key in value:
        try:
            ratio_value(key, "")
        except ValueError:
            raise BadRowError(f"{where}, field '{name}.{key}': {key!r} is not a ratio key; valid: "
                              f"{', '.join(f'{r:g}' for r in FIXED_RATIOS)}") from None
    return value


def chat_text(example: Example) -> str:
    """One SFT example as LLaMA-Factory's ``qwen3`` formatters (which ``qwen3_comp`` reuses) lay it
    out: system, user and assistant turns in ChatML, the response closed by ``<|im_end|>``."""
    return (f"<|im_start|>system\n{example.system}<|im_end|>\n<|im_start|>user\n{example.user}<|im_end|>\n"
            f"<|im_start|>assistant\n{example.response}<|im_end|>\n")


#: Tokens by which a summed count (frame + think text) may miss the rendered example's own count
#: (merges at the think text's two edges); rows this near the cutoff are counted whole.
_EDGE_TOKENS = 8


def longest_example(sft: dict, mixture: MixtureConfig, encode_len, think_tokens: dict[str, int],
                    cutoff: int) -> int:
    """Tokens of the row's longest SFT example as the template renders it (:func:`chat_text`):
    the example LLaMA-Factory's ``cutoff_len`` would cut. Each example is its think text's tokens,
    already counted for the bucket table (``think_tokens``), plus the rest of it (system, user,
    control tokens, markup, answer) counted once; a row within a few tokens of ``cutoff`` has its
    longest example counted whole, so the skip decision is exact."""
    examples = expand_row(sft, dataclasses.replace(mixture, policy_repeat=1), policy_keep=True)
    texts = {"1": sft["cot"], **{k: t for k, t in sft["compressed"].items() if t and t.strip()}}
    frames: dict[str, int] = {}
    best, total = None, 0
    for example in examples:
        key = max((k for k, t in texts.items() if f"<think>\n{t.strip()}</think>" in example.response),
                  key=lambda k: len(texts[k]))
        frame = chat_text(dataclasses.replace(example, response=example.response.replace(texts[key].strip(), "", 1)))
        if frame not in frames:
            frames[frame] = encode_len(frame)
        if frames[frame] + think_tokens[key] > total:
            best, total = example, frames[frame] + think_tokens[key]
    if best is not None and abs(total - cutoff) <= _EDGE_TOKENS:
        total = encode_len(chat_text(best))
    return total


def think_token_counts(sft: dict, encode_len) -> dict[str, int]:
    """Tokens of the row's think texts: ``"1"`` (``cot``) and each compressed key."""
    counts = {"1": encode_len(sft["cot"].strip())}
    counts.update({k: encode_len(t.strip()) for k, t in sft["compressed"].items() if t and t.strip()})
    return counts


def bucket_table(rows: list[dict], sft_rows: list[dict], tokens: list[dict[str, int]]) -> list[dict]:
    """Per bucket: rows, mean realized ratio, mean think tokens, filtered rows and why."""
    kept, realized, think = Counter(), defaultdict(list), defaultdict(list)
    filtered: dict[str, Counter] = defaultdict(Counter)
    for row, sft, counts in zip(rows, sft_rows, tokens, strict=True):
        for key, n in counts.items():
            ratio_key = f"{ratio_value(key, ''):g}"
            kept[ratio_key] += 1
            realized[ratio_key].append(1.0 if key == "1" else (row.get("realized") or {}).get(key, float("nan")))
            think[ratio_key].append(n)
        for key, why in (row.get("dropped") or {}).items():
            filtered[f"{ratio_value(key, ''):g}"][why.split("(")[0]] += 1
    table = []
    for r in FIXED_RATIOS:
        key = f"{r:g}"
        n = kept[key]
        table.append({"bucket": key, "rows": n,
                      "mean_realized": round(sum(realized[key]) / n, 4) if n else None,
                      "mean_think_tokens": round(sum(think[key]) / n, 1) if n else None,
                      "filtered": dict(filtered[key])})
    return table


def format_table(table: list[dict]) -> str:
    lines = [f"{'bucket':>6} {'rows':>6} {'realized':>9} {'think_tok':>9}  filtered (target ratio: reason=n)"]
    for t in table:
        why = ", ".join(f"{k}={v}" for k, v in sorted(t["filtered"].items())) or "-"
        lines.append(f"{t['bucket']:>6} {t['rows']:>6} {t['mean_realized'] if t['mean_realized'] is not None else '-':>9} "
                     f"{t['mean_think_tokens'] if t['mean_think_tokens'] is not None else '-':>9}  {why}")
    return "\n".join(lines)


def output_paths(args) -> dict[str, Path]:
    """Every file build-sft writes; ``dataset_info.json`` last (it registers the dataset)."""
    out_dir = Path(args.output_dir)
    return {"data": out_dir / f"{args.name}.jsonl", "skipped": out_dir / f"{args.name}{SIDE_FILE_SUFFIXES[0]}",
            "report": out_dir / f"{args.name}.build_sft.json", "info": out_dir / "dataset_info.json"}


def _read_info(path: Path) -> dict:
    """The dataset_info.json build-sft merges into (read before anything is written)."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a JSON object ({err}); fix or remove it") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object of dataset entries, got {type(info).__name__}")  # noqa: TRY004
    return info


def read_rows(args, policy: dict[str, float], mixture: MixtureConfig, encode_len) -> dict:
    """Every input row checked: the kept compress and SFT rows with their think-token counts, and
    one skip-log row per row left out (``bad_row``, ``duplicate``, ``too_long``), with stats."""
    got: dict = {"rows": [], "sft": [], "tokens": [], "skipped": [], "stats": Counter()}
    seen: dict[str, str] = {}
    for path, n, row in read_jsonl_inputs(args.input):
        where = f"{path}:{n}"
        try:
            sft, note = sft_row(row, where, policy)
        except BadRowError as exc:
            logger.warning("skipping row: %s", exc)
            _skip(got, path, n, "bad_row", detail=str(exc))
            continue
        key = policy_key(sft)
        if key in seen:
            _skip(got, path, n, "duplicate", detail=f"same question, cot and answer as {seen[key]}")
            continue
        seen[key] = where
        think = think_token_counts(sft, encode_len)
        tokens = longest_example(sft, mixture, encode_len, think, args.cutoff_len) if args.cutoff_len else 0
        if tokens > args.cutoff_len:
            _skip(got, path, n, "too_long", tokens=tokens, cutoff_len=args.cutoff_len)
            continue
        got["stats"].update([note] if note else [])
        got["stats"]["gt_ratio"] += "gt_ratio" in sft
        got["rows"].append(row)
        got["sft"].append(sft)
        got["tokens"].append(think)
    too_long = got["stats"]["skipped:too_long"]
    if too_long:
        logger.warning("%d row(s) skipped: their longest example is over --cutoff-len %d tokens (LLaMA-Factory "
                       "would truncate it); see the skip log", too_long, args.cutoff_len)
    if not got["sft"]:
        raise ValueError(f"--input {args.input}: no row to write ({len(got['skipped'])} skipped, "
                         f"reasons logged above)")
    return got


def _skip(got: dict, path: Path, line: int, reason: str, **detail) -> None:
    got["skipped"].append({"file": str(path), "line": line, "reason": reason, **detail})
    got["stats"][f"skipped:{reason}"] += 1


def run(args) -> tuple[list[dict], Counter]:
    from extra_cot.compress.models import load_tokenizer

    if args.cutoff_len < 0:
        raise ValueError(f"--cutoff-len {args.cutoff_len}: use a token count >= 1, or 0 for no length filter")
    mixture = mixture_from_args(args)
    paths = output_paths(args)
    refuse_overlap(args.input, [Path(args.output_dir), *paths.values()], "--output-dir")
    if args.policy_ratios:
        refuse_overlap(args.policy_ratios, paths.values(), "--output-dir")
    policy = load_policy_ratios(args.policy_ratios)
    info = _read_info(paths["info"])
    tokenizer = load_tokenizer(args.tokenizer)

    def encode_len(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    got = read_rows(args, policy, mixture, encode_len)
    stats = got["stats"]
    if args.policy_share is not None:
        n_fixed, n_policy = example_counts(got["sft"], mixture)
        mixture.policy_repeat = repeat_for_share(n_fixed, n_policy, args.policy_share)
        stats["fixed_examples"], stats["policy_examples"] = n_fixed, n_policy
        stats["policy_repeat"] = mixture.policy_repeat
    table = bucket_table(got["rows"], got["sft"], got["tokens"])
    # every check is done: write the rows, the skip log and the report, then register the dataset
    atomic_write_jsonl(paths["data"], got["sft"])
    atomic_write_jsonl(paths["skipped"], got["skipped"])
    atomic_write_json(paths["report"], {"args": vars(args), "table": table, "stats": dict(stats)})
    info[args.name] = dataset_info_entry(paths["data"].name, mixture)
    atomic_write_json(paths["info"], info)
    return table, stats


def _report(result: tuple[list[dict], Counter]) -> None:
    table, stats = result
    print(format_table(table))
    print("rows written:", table[-1]["rows"], "| " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), run, argv, _report)
