"""``extra-cot build-rl``: verl parquet for CHRPO from the SFT model's ratio sweep.

Reads ``SWEEP/<dataset>/<ratio>/prediction.json`` (the evaluation tree; run ``extra-cot eval``
with ``--ratios 0.2,0.4,0.6,0.8,1.0 --n-samples 3`` on the RL questions), selects questions and
targets (``extra_cot.rl.rl_data``) and writes::

    OUT/train.parquet  OUT/val.parquet   verl rows: data_source, prompt (<COMP_AUTO> chat),
                                         ability, reward_model{style, ground_truth},
                                         extra_info{gt_ratio, ref_full_len, comp_tolerance, ...}
    OUT/build_rl_config.json             the resolved options
    OUT/build_rl_stats.json              the per-ratio kept/dropped table

Exit codes: 0 built (or already built with these options), 2 bad input or options,
3 (``EXIT_TOO_FEW_ROWS``) fewer train rows than one ``--train-batch-size`` batch: the sweep left
too few questions for verl to take one step; nothing is written (a pipeline may skip Stage 3 on it).

Examples::

    extra-cot build-rl --sweep out/rl_sweep --output-dir data/rl --train-batch-size 128
    extra-cot build-rl --sweep out/rl_sweep --output-dir data/rl --quotas none --val-size 200
    extra-cot build-rl --sweep out/rl_sweep --output-dir data/rl --datasets metamath \\
        --quotas 0.2:0.2,0.4:0.2,0.6:0.2,0.8:0.2,1.0:0.2 --num-rows 5000 --overwrite
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from extra_cot.cliargs import USER_ERRORS, user_error_line
from extra_cot.eval.store import PREDICTION
from extra_cot.fileio import (
    atomic_output,
    atomic_write_json,
    refuse_overlap,
    require_bool,
    require_count,
    require_gold,
    require_text,
)
from extra_cot.prompt import build_messages
from extra_cot.quotas import parse_quotas
from extra_cot.rl.rl_data import (
    DEFAULT_TOLERANCE,
    DROP_REASONS,
    aggregate,
    decide,
    select_quota,
)
from extra_cot.tokens import FIXED_RATIOS, ratio_dir_name

logger = logging.getLogger(__name__)

#: verl 0.9.1's ``data.train_batch_size`` default (verl/trainer/config/ppo_trainer.yaml); verl's
#: train loader drops the last partial batch, so fewer rows than this train for zero steps.
VERL_TRAIN_BATCH_SIZE = 1024

#: Record fields build-rl needs from prediction.json (eval contract in the working agreement).
REQUIRED_FIELDS = ("index", "question", "gold", "correct", "think_tokens")


@dataclass(frozen=True)
class BuildRlConfig:
    """Resolved options of ``extra-cot build-rl`` (saved as ``build_rl_config.json``)."""

    sweep: str
    output_dir: str
    datasets: tuple[str, ...] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    quotas: str = "method"
    num_rows: int | None = None
    val_size: float = 0.05
    seed: int = 0
    train_batch_size: int = VERL_TRAIN_BATCH_SIZE

    def __post_init__(self) -> None:
        if not self.tolerance > 0:
            raise ValueError(f"--tolerance {self.tolerance}: must be > 0 (docs/method.md uses 0.1)")
        if self.val_size < 0:
            raise ValueError(f"--val-size {self.val_size}: a fraction in [0, 1) or a row count >= 1")
        if self.train_batch_size < 1:
            raise ValueError(f"--train-batch-size {self.train_batch_size}: must be >= 1 (verl's data.train_batch_size)")
        parse_quotas(self.quotas)


def load_predictions(path: Path) -> list[dict]:
    """One prediction.json, checked for the fields build-rl reads (errors name file/row/field)."""
    try:
        records = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not UTF-8
        raise ValueError(f"{path}: cannot read a JSON list of prediction records ({err})") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")  # noqa: TRY004 (bad input file, reported like every other input error)
    for n, rec in enumerate(records, 1):
        missing = [f for f in REQUIRED_FIELDS if not isinstance(rec, dict) or f not in rec]
        if missing:
            raise ValueError(f"{path}:{n}: record lacks field(s) {missing} (eval prediction.json contract)")
        check_record(rec, f"{path}:{n}")
    return records


def check_record(rec: dict, where: str) -> None:
    """Refuse (never coerce) a record's fields: a missing or non-scalar gold would become the
    answer ``"None"`` or ``"[1, 2]"`` in the parquet, ``"false"`` would count as correct."""
    require_count(rec, "index", where)
    require_text(rec, "question", where)
    rec["gold"] = require_gold(rec, "gold", where)  # a number becomes its text, as the grader reads it
    require_bool(rec, "correct", where)
    require_count(rec, "think_tokens", where, nullable=True)


def discover(sweep: Path, datasets: tuple[str, ...] | None) -> list[str]:
    """Dataset folders of the sweep that hold every fixed ratio."""
    if not sweep.is_dir():
        raise ValueError(
            f"--sweep {sweep}: not a directory (expected SWEEP/<dataset>/<ratio>/prediction.json)"
        )
    found = sorted(p.name for p in sweep.iterdir() if (p / ratio_dir_name(1.0) / PREDICTION).is_file())
    chosen = list(datasets) if datasets else found
    for name in chosen:
        for ratio in FIXED_RATIOS:
            if not (sweep / name / ratio_dir_name(ratio) / PREDICTION).is_file():
                raise ValueError(
                    f"{sweep / name / ratio_dir_name(ratio) / PREDICTION} missing: run `extra-cot eval` "
                    f"with --ratios {','.join(map(ratio_dir_name, FIXED_RATIOS))} --n-samples 3 on these questions"
                )
    if not chosen:
        raise ValueError(f"--sweep {sweep}: no <dataset>/1.0/prediction.json found")
    return chosen


def _row(item, decision, tolerance: float, split: str) -> dict:
    return {
        "data_source": item.dataset,
        "prompt": build_messages(item.question, "policy"),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": item.gold},
        "extra_info": {
            "gt_ratio": float(decision.gt_ratio),
            "ref_full_len": float(decision.ref_full_len),
            "comp_tolerance": float(tolerance),
            "rho": float(decision.rho),
            "dataset": item.dataset,
            "index": int(item.index),
            "split": split,
        },
    }


def select(cfg: BuildRlConfig) -> tuple[dict[float, list], dict, dict]:
    """Read the sweep, decide every question, apply quotas: (kept by γ*, decisions, counts)."""
    sweep = Path(cfg.sweep)
    candidates: dict[float, list] = {r: [] for r in FIXED_RATIOS}
    decisions: dict = {}
    dropped = {reason: {r: 0 for r in (*FIXED_RATIOS, None)} for reason in DROP_REASONS}
    for name in tqdm(discover(sweep, cfg.datasets), desc="datasets", disable=None):
        by_ratio = {
            r: load_predictions(sweep / name / ratio_dir_name(r) / PREDICTION) for r in FIXED_RATIOS
        }
        for item in aggregate(name, by_ratio).values():
            decision = decide(item, cfg.tolerance)
            decisions[(name, item.index)] = decision
            if decision.status == "kept":
                candidates[decision.gt_ratio].append(item)
            else:
                dropped[decision.status][decision.gt_ratio] += 1
    quotas = parse_quotas(cfg.quotas)
    empty = [r for r, q in (quotas or {}).items() if q > 0 and not candidates.get(r)]
    if empty:
        logger.warning("no question has gamma* in %s; their quota shares are spread over the others", empty)
    kept = select_quota(candidates, quotas, cfg.num_rows, cfg.seed)
    counts = {"candidates": {r: len(v) for r, v in candidates.items()}, "dropped": dropped}
    return kept, decisions, counts


def split_rows(kept: dict[float, list], decisions: dict, cfg: BuildRlConfig) -> dict[str, list[dict]]:
    items = [item for r in sorted(kept) for item in kept[r]]
    random.Random(cfg.seed).shuffle(items)
    n_val = round(cfg.val_size * len(items)) if cfg.val_size < 1 else min(int(cfg.val_size), len(items))
    check_sizes(len(items), n_val, cfg)
    parts = {"val": items[:n_val], "train": items[n_val:]}
    return {
        split: [_row(it, decisions[(it.dataset, it.index)], cfg.tolerance, split) for it in rows]
        for split, rows in parts.items()
    }


#: Exit code of ``build-rl`` when the train split is smaller than one batch (:class:`TooFewRows`).
EXIT_TOO_FEW_ROWS = 3


class TooFewRows(ValueError):
    """Fewer train rows than one ``--train-batch-size`` batch: verl would take zero steps."""


def check_sizes(n_rows: int, n_val: int, cfg: BuildRlConfig) -> None:
    """Refuse splits verl cannot use: an empty val set (it fails on batch_size=0) or fewer train
    rows than one batch (its loader drops the partial batch: zero steps, silently)."""
    if n_val == 0:
        raise ValueError(
            f"the val set would be empty: {n_rows} selected rows x --val-size {cfg.val_size:g} = 0 rows "
            f"(verl fails on a val batch of 0); pass --val-size as a row count >= 1 (e.g. --val-size 1) "
            f"or give build-rl more questions"
        )
    n_train = n_rows - n_val
    if n_train < cfg.train_batch_size:
        raise TooFewRows(
            f"the train set has {n_train} rows ({n_rows} selected - {n_val} val), fewer than "
            f"--train-batch-size {cfg.train_batch_size} (verl's data.train_batch_size): verl would run zero "
            f"steps; lower --train-batch-size (and pass the same data.train_batch_size to verl), lower "
            f"--val-size, or give build-rl more questions"
        )


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["data_source", "prompt", "ability", "reward_model", "extra_info"])
    with atomic_output(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _write_json(obj, path: Path) -> None:
    atomic_write_json(path, obj, sort_keys=True)


def stats_table(counts: dict, kept: dict[float, list], rows: dict[str, list[dict]]) -> list[dict]:
    """One row per γ* (plus one for questions without γ*): candidates, drops, kept train/val."""
    per_split = {s: {} for s in rows}
    for split, split_rows_ in rows.items():
        for row in split_rows_:
            g = row["extra_info"]["gt_ratio"]
            per_split[split][g] = per_split[split].get(g, 0) + 1
    table = []
    for ratio in (*FIXED_RATIOS, None):
        cand = counts["candidates"].get(ratio, 0) if ratio is not None else 0
        entry = {"gt_ratio": "none" if ratio is None else ratio_dir_name(ratio), "candidates": cand}
        for reason in DROP_REASONS:
            entry[f"dropped_{reason}"] = counts["dropped"][reason][ratio]
        entry["dropped_quota"] = cand - len(kept.get(ratio, [])) if ratio is not None else 0
        entry["train"] = per_split.get("train", {}).get(ratio, 0)
        entry["val"] = per_split.get("val", {}).get(ratio, 0)
        table.append(entry)
    return table


def print_table(table: list[dict]) -> None:
    headers = list(table[0])
    widths = [max(len(h), *(len(str(r[h])) for r in table)) for h in headers]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for row in table:
        print("  ".join(str(row[h]).rjust(w) for h, w in zip(headers, widths)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extra-cot build-rl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    io = parser.add_argument_group("input/output")
    io.add_argument("--sweep", required=True, help="evaluation tree SWEEP/<dataset>/<ratio>/prediction.json")
    io.add_argument("--output-dir", required=True, help="where train/val parquet and the config go")
    io.add_argument("--datasets", default=None, help="comma-separated dataset folders (default: all)")
    io.add_argument("--overwrite", action="store_true", help="replace outputs built with other options")
    sel = parser.add_argument_group("selection")
    sel.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE, help="window half-width and comp_tolerance"
    )
    sel.add_argument(
        "--quotas", default="method", help="'method' (18/24/26/22/10%%), 'none', or '0.2:0.18,...'"
    )
    sel.add_argument(
        "--num-rows", type=int, default=None, help="total rows under quotas (default: the most allowed)"
    )
    sel.add_argument(
        "--val-size", type=float, default=0.05, help="validation fraction (<1) or row count (>=1)"
    )
    sel.add_argument("--seed", type=int, default=0)
    sel.add_argument(
        "--train-batch-size", type=int, default=VERL_TRAIN_BATCH_SIZE,
        help="the data.train_batch_size the verl run will use (default verl's 1024); fewer train rows: "
        f"exit {EXIT_TOO_FEW_ROWS}, nothing written",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except TooFewRows as err:
        print(f"extra-cot build-rl: {user_error_line(err)}", file=sys.stderr)
        return EXIT_TOO_FEW_ROWS
    except USER_ERRORS as err:
        print(f"extra-cot build-rl: {user_error_line(err)}", file=sys.stderr)
        return 2


def _config(args) -> BuildRlConfig:
    datasets = tuple(d.strip() for d in args.datasets.split(",") if d.strip()) if args.datasets else None
    return BuildRlConfig(sweep=args.sweep, output_dir=args.output_dir, datasets=datasets, tolerance=args.tolerance,
                         quotas=args.quotas, num_rows=args.num_rows, val_size=args.val_size, seed=args.seed,
                         train_batch_size=args.train_batch_size)


def _run(args) -> int:
    cfg = _config(args)
    out = Path(cfg.output_dir)
    refuse_overlap(cfg.sweep, [out], "--output-dir")
    config_path = out / "build_rl_config.json"
    resolved = {**asdict(cfg), "ratios": list(FIXED_RATIOS)}
    if config_path.exists() and not args.overwrite:
        try:
            saved = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            saved = None
        if saved == json.loads(json.dumps(resolved)):
            print(f"{out}: already built with these options (pass --overwrite to rebuild)")
            return 0
        raise ValueError(f"{out} holds a build with other options: pass --overwrite or another --output-dir")
    kept, decisions, counts = select(cfg)
    rows = split_rows(kept, decisions, cfg)
    out.mkdir(parents=True, exist_ok=True)
    config_path.unlink(missing_ok=True)  # a rebuild that fails part way must not look finished
    for split, split_rows_ in rows.items():
        _write_parquet(split_rows_, out / f"{split}.parquet")
    table = stats_table(counts, kept, rows)
    _write_json(table, out / "build_rl_stats.json")
    _write_json(resolved, config_path)  # written last: its presence marks a finished build
    print_table(table)
    print(f"wrote {len(rows['train'])} train / {len(rows['val'])} val rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
