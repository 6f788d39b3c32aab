"""Data-processing throughput: our ``extra_cot`` path vs LLaMA-Factory's stock supervised processor.

Both sides tokenize exactly the same chat examples with the same template and tokenizer:

- stock: the examples already expanded into LLaMA-Factory's aligned format (what a flat,
  pre-expanded file would give), tokenized by ``SupervisedDatasetProcessor``;
- extra_cot: the multi-ratio rows through ``ExtraCotConverter`` (file scan, validation,
  expansion) and ``ExtraCotSupervisedDatasetProcessor`` (explode + the same tokenization).

Examples::

    .venv/bin/python benchmarks/sft_data_bench.py                      # tiny local tokenizer, 2000 rows
    .venv/bin/python benchmarks/sft_data_bench.py --rows 5000 --tokenizer models/qwen3-1.7b-comp
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def synthetic_rows(n: int, think_words: int = 120) -> list[dict]:
    """Rows shaped like build-sft output; every 4th has no 0.2 text, half carry a gt_ratio."""
    rows = []
    for i in range(n):
        words = [f"step{j} {i}+{j}={i + j}." for j in range(think_words // 2)]
        comp = {f"{r:.1f}": " ".join(words[: max(1, int(len(words) * r))]) for r in (0.2, 0.4, 0.6, 0.8)}
        if i % 4 == 0:
            del comp["0.2"]
        row = {"question": f"Question {i}: add the numbers.", "cot": " ".join(words),
               "answer": f"The answer is \\boxed{{{i}}}.", "compressed": comp}
        if i % 2 == 0:
            row["gt_ratio"] = (0.4, 0.6, 0.8, 1.0)[(i // 2) % 4]
        rows.append(row)
    return rows


def _batches(aligned: list[dict], size: int):
    for start in range(0, len(aligned), size):
        chunk = aligned[start : start + size]
        yield {key: [row[key] for row in chunk] for key in chunk[0]}


def _run(processor, aligned: list[dict], batch: int) -> int:
    return sum(len(processor.preprocess_dataset(b)["input_ids"]) for b in _batches(aligned, batch))


def bench(rows: list[dict], tokenizer_dir: str, batch: int, cutoff: int, workdir: Path, repeat: int = 3) -> dict:
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.parser import DatasetAttr
    from llamafactory.data.processor import SupervisedDatasetProcessor
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    from extra_cot.sft.mixture import dataset_info_entry
    from extra_cot.sft.plugin import register
    from extra_cot.sft.processor import ExtraCotConverter, ExtraCotSupervisedDatasetProcessor, explode

    register()
    (workdir / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (workdir / "dataset_info.json").write_text(json.dumps({"bench": dataset_info_entry("rows.jsonl")}))
    data_args = DataArguments(template="qwen3_comp", cutoff_len=cutoff, dataset="bench", dataset_dir=str(workdir))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    kwargs = {"template": template, "tokenizer": tokenizer, "processor": None, "data_args": data_args}

    # the stock side gets the already-expanded examples (prepared outside the timed region)
    converter = ExtraCotConverter(DatasetAttr("file", dataset_name="rows.jsonl"), data_args)
    expanded_rows = [converter(r) for r in rows]
    flat = explode({k: [r[k] for r in expanded_rows] for k in expanded_rows[0]})
    stock_aligned = [{k: flat[k][i] for k in flat} for i in range(len(flat["_prompt"]))]

    stock_s, ours_s = [], []
    for _ in range(repeat):  # alternate, keep the best of each: the machine is shared (2 cores)
        t0 = time.perf_counter()
        stock_n = _run(SupervisedDatasetProcessor(**kwargs), stock_aligned, batch)
        stock_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours_converter = ExtraCotConverter(DatasetAttr("file", dataset_name="rows.jsonl"), data_args)
        aligned = [ours_converter(r) for r in rows]
        ours_n = _run(ExtraCotSupervisedDatasetProcessor(**kwargs), aligned, batch)
        ours_s.append(time.perf_counter() - t0)
    assert ours_n == stock_n, f"example counts differ: ours {ours_n}, stock {stock_n}"
    t_stock, t_ours = min(stock_s), min(ours_s)
    return {"rows": len(rows), "examples": ours_n, "stock_s": t_stock, "ours_s": t_ours, "repeat": repeat}


def _table(res: dict) -> str:
    lines = ["| path | input rows | examples | seconds | input rows/s | examples/s |", "|---|---|---|---|---|---|"]
    stock_rows = res["examples"]  # the stock side reads one pre-expanded row per example
    lines.append(f"| stock SupervisedDatasetProcessor (pre-expanded) | {stock_rows} | {res['examples']} | "
                 f"{res['stock_s']:.2f} | {stock_rows / res['stock_s']:.0f} | {res['examples'] / res['stock_s']:.0f} |")
    lines.append(f"| extra_cot converter + processor (multi-ratio) | {res['rows']} | {res['examples']} | "
                 f"{res['ours_s']:.2f} | {res['rows'] / res['ours_s']:.0f} | {res['examples'] / res['ours_s']:.0f} |")
    lines.append(f"\nexamples/s ratio extra_cot / stock = {res['stock_s'] / res['ours_s']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Examples::")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2000, help="multi-ratio rows (default 2000)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: a tiny one built locally)")
    p.add_argument("--batch", type=int, default=1000, help="batch size, like preprocessing_batch_size")
    p.add_argument("--cutoff", type=int, default=4096, help="cutoff_len")
    p.add_argument("--repeat", type=int, default=3, help="alternating timed runs; the best of each is kept")
    p.add_argument("--output", help="also write the numbers as JSON here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = args.tokenizer
        if tok_dir is None:
            from extra_cot.testing import build_tokenizer

            tok_dir = str(Path(tmp) / "tok")
            build_tokenizer(tok_dir, control_tokens=True)
        res = bench(synthetic_rows(args.rows), tok_dir, args.batch, args.cutoff, Path(tmp), args.repeat)
    print(_table(res))
    if args.output:
        Path(args.output).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
