"""Data-processing throughput: our ``extra_cot`` path vs LLaMA-Factory's stock supervised processor.

Both sides tokenize exactly the same chat examples with the same template and tokenizer:

- stock: the examples already expanded into LLaMA-Factory's aligned format (what a flat,
  pre-expanded file would give), tokenized by ``SupervisedDatasetProcessor``;
- extra_cot: the multi-ratio rows through ``ExtraCotConverter`` (the job's one file scan, run in
  every timed repetition, validation, expansion) and ``ExtraCotSupervisedDatasetProcessor``
  (explode + the same tokenization).

The two sides are timed batch by batch, interleaved (the same examples each: one batch of rows
for us, the examples they expand to for stock), so a shared machine's load hits both alike; the
converter (file scan + conversion, once per job) is added to our side (best of ``--repeat``).
Wall-clock and CPU time of this process are reported, means over ``--repeat`` passes.

``--memory MB``: peak memory of the converter's file scan (once per job) on a generated
JSONL file of about MB megabytes, before (the whole file read and parsed, as up to issue 13)
and after (streamed, ``extra_cot.sft.scan``), each in a fresh process, in the same run; the
converter runs exactly that scan, and a test checks it is streamed (tests/sft/test_sft_processor.py).

Examples::

    .venv/bin/python benchmarks/sft_data_bench.py                      # tiny local tokenizer, 2000 rows
    .venv/bin/python benchmarks/sft_data_bench.py --rows 5000 --tokenizer models/qwen3-1.7b-comp
    .venv/bin/python benchmarks/sft_data_bench.py --memory 200         # peak RSS of the scan, 200 MB file
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def synthetic_row(i: int, think_words: int = 120) -> dict:
    """A row shaped like build-sft output; every 4th has no 0.2 text, half carry a gt_ratio."""
    words = [f"step{j} {i}+{j}={i + j}." for j in range(think_words // 2)]
    comp = {f"{r:.1f}": " ".join(words[: max(1, int(len(words) * r))]) for r in (0.2, 0.4, 0.6, 0.8)}
    if i % 4 == 0:
        del comp["0.2"]
    row = {"question": f"Question {i}: add the numbers.", "cot": " ".join(words),
           "answer": f"The answer is \\boxed{{{i}}}.", "compressed": comp}
    if i % 2 == 0:
        row["gt_ratio"] = (0.4, 0.6, 0.8, 1.0)[(i // 2) % 4]
    return row


def synthetic_rows(n: int, think_words: int = 120) -> list[dict]:
    return [synthetic_row(i, think_words) for i in range(n)]


def _batches(aligned: list[dict], size: int):
    for start in range(0, len(aligned), size):
        chunk = aligned[start : start + size]
        yield {key: [row[key] for row in chunk] for key in chunk[0]}


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

    ours_args = dataclasses.replace(data_args, overwrite_cache=True)  # the job's one file scan is timed too
    ours_proc, stock_proc = ExtraCotSupervisedDatasetProcessor(**kwargs), SupervisedDatasetProcessor(**kwargs)
    # ours gets batches of rows that expand to ~``batch`` examples; stock gets those same examples
    per_batch = max(1, batch * len(rows) // len(stock_aligned))
    ends = [0, *itertools.accumulate(len(r["_prompt"]) for r in expanded_rows)]
    cuts = [ends[min(i, len(rows))] for i in range(0, len(rows) + per_batch, per_batch)]
    stock_batches = [_column_batch(stock_aligned[a:z]) for a, z in itertools.pairwise(cuts) if z > a]

    clock = {"stock": [0.0, 0.0], "ours": [0.0, 0.0]}
    counts = {"stock": 0, "ours": 0}
    convert_best = (float("inf"), float("inf"))
    for _ in range(repeat):
        with _timer() as t:  # once per job: scan the file, convert every row
            ours_converter = ExtraCotConverter(DatasetAttr("file", dataset_name="rows.jsonl"), ours_args)
            aligned = [ours_converter(r) for r in rows]
        convert_best = tuple(map(min, convert_best, t.elapsed))
        aligned_batches = list(_batches(aligned, per_batch))
        # interleaved batch by batch: a shared machine's load hits both sides alike
        for ours_b, stock_b in zip(aligned_batches, stock_batches, strict=True):
            for name, proc, data in (("stock", stock_proc, stock_b), ("ours", ours_proc, ours_b)):
                with _timer() as t:
                    counts[name] += len(proc.preprocess_dataset(data)["input_ids"])
                clock[name] = [clock[name][0] + t.elapsed[0], clock[name][1] + t.elapsed[1]]
    assert counts["ours"] == counts["stock"], f"example counts differ: {counts}"
    wall = {k: v[0] / repeat for k, v in clock.items()}
    cpu = {k: v[1] / repeat for k, v in clock.items()}
    return {"rows": len(rows), "examples": counts["ours"] // repeat, "repeat": repeat,
            "stock_s": wall["stock"], "ours_s": wall["ours"] + convert_best[0],
            "stock_cpu_s": cpu["stock"], "ours_cpu_s": cpu["ours"] + convert_best[1],
            "convert_s": convert_best[0], "convert_cpu_s": convert_best[1]}


def _column_batch(aligned: list[dict]) -> dict:
    return {key: [row[key] for row in aligned] for key in aligned[0]}


class _timer:
    """``with _timer() as t``: ``t.elapsed`` = (wall seconds, CPU seconds of this process)."""

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc):
        self.elapsed = (time.perf_counter() - self._start[0], time.process_time() - self._start[1])


def _table(res: dict) -> str:
    lines = ["| path | input rows | examples | seconds | input rows/s | examples/s |", "|---|---|---|---|---|---|"]
    stock_rows = res["examples"]  # the stock side reads one pre-expanded row per example
    lines.append(f"| stock SupervisedDatasetProcessor (pre-expanded) | {stock_rows} | {res['examples']} | "
                 f"{res['stock_s']:.2f} | {stock_rows / res['stock_s']:.0f} | {res['examples'] / res['stock_s']:.0f} |")
    lines.append(f"| extra_cot converter + processor (multi-ratio) | {res['rows']} | {res['examples']} | "
                 f"{res['ours_s']:.2f} | {res['rows'] / res['ours_s']:.0f} | {res['examples'] / res['ours_s']:.0f} |")
    lines.append(f"\nexamples/s ratio extra_cot / stock = {res['stock_s'] / res['ours_s']:.2f} (wall clock), "
                 f"{res['stock_cpu_s'] / res['ours_cpu_s']:.2f} (CPU time of this process: "
                 f"{res['stock_cpu_s']:.2f} s stock, {res['ours_cpu_s']:.2f} s extra_cot)")
    return "\n".join(lines)


# ---- --memory: peak memory of the converter's file scan ---------------------------------------


def write_rows_file(path: Path, megabytes: float, think_words: int = 120) -> int:
    """Stream synthetic rows into ``path`` until it holds ``megabytes`` MB; return the row count."""
    limit, size, n = megabytes * 1e6, 0, 0
    with open(path, "w", encoding="utf-8") as fh:
        while size < limit:
            line = json.dumps(synthetic_row(n, think_words)) + "\n"
            fh.write(line)
            size += len(line.encode("utf-8"))
            n += 1
    return n


def _scan_before(path: str, mixture) -> tuple[str, ...]:
    """The converter's scan as it was before issue 13 (``git show 246fd9d:plugins/extra_cot/sft/
    processor.py``, ``_read_rows`` + ``__post_init__``): the whole file read into one string,
    every row parsed into a list, then the quota selection over the list. The measured baseline."""
    from extra_cot.sft.mixture import select_policy_rows, validate_row

    with open(path, encoding="utf-8") as f:
        text = f.read()
    pairs = [(f"{path} line {i + 1}", json.loads(line)) for i, line in enumerate(text.splitlines()) if line.strip()]
    rows = []
    for where, row in pairs:
        validate_row(row, where)
        rows.append(row)
    return tuple(sorted(select_policy_rows(rows, mixture)))


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":")) / 1024


def measure_scan(mode: str, workdir: str) -> dict:
    """In this (fresh) process: reset the peak RSS, scan ``rows.jsonl``, report both."""
    from extra_cot.sft.mixture import MixtureConfig
    from extra_cot.sft.scan import scan_files

    entry = json.loads((Path(workdir) / "dataset_info.json").read_text())["bench"]
    mixture = MixtureConfig.from_dict(entry["extra_cot"])
    path = os.path.join(workdir, entry["file_name"])
    with open("/proc/self/clear_refs", "w") as fh:  # Linux: VmHWM (peak RSS) := current RSS
        fh.write("5")
    start = _status_mb("VmRSS")
    t0 = time.perf_counter()
    keep = _scan_before(path, mixture) if mode == "before" else scan_files([path], mixture, "bench")[0]
    seconds = time.perf_counter() - t0
    digest = hashlib.sha256("\n".join(keep).encode()).hexdigest()[:12]
    return {"mode": mode, "rss_start_mb": start, "rss_peak_mb": _status_mb("VmHWM"), "seconds": seconds,
            "policy_rows": len(keep), "selection_sha": digest}


def memory_bench(megabytes: float, workdir: Path) -> dict:
    from extra_cot.sft.mixture import dataset_info_entry

    rows = write_rows_file(workdir / "rows.jsonl", megabytes)
    (workdir / "dataset_info.json").write_text(json.dumps({"bench": dataset_info_entry("rows.jsonl")}))
    results = []
    for mode in ("before", "after"):  # each in a fresh interpreter: peak RSS is per process
        done = subprocess.run([sys.executable, __file__, "--measure-scan", mode, str(workdir)],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    size = (workdir / "rows.jsonl").stat().st_size / 1e6
    return {"file_mb": size, "rows": rows, "runs": results}


def _memory_table(res: dict) -> str:
    lines = [f"file: {res['file_mb']:.0f} MB, {res['rows']} rows (JSONL)", "",
             "| converter scan | peak RSS - RSS before scan (MB) | peak RSS (MB) | seconds | policy rows | selection |",
             "|---|---|---|---|---|---|"]
    names = {"before": "before: whole file read and parsed", "after": "after: streamed (sft.scan.scan_files)"}
    for r in res["runs"]:
        lines.append(f"| {names[r['mode']]} | {r['rss_peak_mb'] - r['rss_start_mb']:.0f} | {r['rss_peak_mb']:.0f} | "
                     f"{r['seconds']:.1f} | {r['policy_rows']} | {r['selection_sha']} |")
    same = len({r["selection_sha"] for r in res["runs"]}) == 1
    lines.append(f"\nsame policy selection before and after: {same}")
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
    p.add_argument("--memory", type=float, metavar="MB",
                   help="instead: peak memory of the converter's file scan on a generated MB-megabyte file")
    p.add_argument("--measure-scan", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)  # child process
    args = p.parse_args(argv)
    if args.measure_scan:
        print(json.dumps(measure_scan(*args.measure_scan)))
        return 0
    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            res = memory_bench(args.memory, Path(tmp))
        print(_memory_table(res))
        if args.output:
            Path(args.output).write_text(json.dumps(res, indent=2))
        return 0
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
