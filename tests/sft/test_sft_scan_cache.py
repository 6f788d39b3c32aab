"""One parse of the SFT file per job (issue 19, item 4): the process that scans first leaves its
result in a cache file; the others (LLaMA-Factory's non-main ranks) read it instead of parsing.

Parses are counted at the reader (``extra_cot.sft.scan.read_records``): a second rank's
converter must not open the data file at all.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter

import pytest

pytest.importorskip("llamafactory")

from extra_cot.sft import scan
from extra_cot.sft.mixture import MixtureConfig, select_policy_rows


@pytest.fixture
def parses(monkeypatch):
    """Counter of data-file parses, by file name."""
    counts: Counter = Counter()
    real = scan.read_records

    def counting(path):
        counts[os.path.basename(path)] += 1
        return real(path)

    monkeypatch.setattr(scan, "read_records", counting)
    return counts


@pytest.fixture
def scan_cache(monkeypatch, tmp_path):
    """The ``datasets`` cache (hence the scan cache) in a fresh folder."""
    from datasets import config

    monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")
    return tmp_path / "hf_datasets" / "extra_cot_scan"


def _rows(sft, n=40):
    return [sft.make_row(i, (0.2, 0.4, 0.6, 0.8, 1.0)[i % 5] if i % 3 else None) for i in range(n)]


def _converter(data_dir, **data_kwargs):
    from llamafactory.data.parser import DatasetAttr
    from llamafactory.hparams import DataArguments

    from extra_cot.sft.processor import ExtraCotConverter

    args = DataArguments(template="qwen3_comp", dataset="mix", dataset_dir=str(data_dir), **data_kwargs)
    return ExtraCotConverter(DatasetAttr("file", dataset_name="mix.jsonl"), args)


def test_ranks_after_the_main_process_read_its_scan(sft, tmp_path, parses, scan_cache, monkeypatch):
    rows = _rows(sft)
    data = sft.write_dataset(tmp_path / "data", rows)
    monkeypatch.setenv("LOCAL_RANK", "0")
    main = _converter(data)
    assert parses["mix.jsonl"] == 1 and len(list(scan_cache.glob("*.json"))) == 1
    for rank in ("1", "2", "3"):
        monkeypatch.setenv("LOCAL_RANK", rank)
        other = _converter(data, overwrite_cache=True)  # overwrite_cache: only the main process recomputes
        assert (other.policy_keep, other.bad_rows) == (main.policy_keep, main.bad_rows)
    assert parses["mix.jsonl"] == 1
    assert set(main.policy_keep) == select_policy_rows(rows, MixtureConfig())


def test_main_process_rescans_on_overwrite_cache(sft, tmp_path, parses, scan_cache, monkeypatch):
    data = sft.write_dataset(tmp_path / "data", _rows(sft))
    monkeypatch.delenv("LOCAL_RANK", raising=False)  # single process: it is the main one
    _converter(data)
    _converter(data, overwrite_cache=True)
    assert parses["mix.jsonl"] == 2


def test_a_changed_file_or_mixture_is_scanned_again(sft, tmp_path, parses, scan_cache):
    rows = _rows(sft)
    data = sft.write_dataset(tmp_path / "data", rows)
    first = _converter(data)
    sft.write_dataset(tmp_path / "data", rows, {"policy_quotas": None})  # other options, same rows
    every = _converter(data)
    assert parses["mix.jsonl"] == 2
    assert set(every.policy_keep) == {k for r in rows if "gt_ratio" in r for k in [scan.policy_key(r)]}
    assert set(first.policy_keep) < set(every.policy_keep)
    sft.write_dataset(tmp_path / "data", rows[:-5], {"policy_quotas": None})  # other rows, same options
    fewer = _converter(data)
    assert parses["mix.jsonl"] == 3 and len(fewer.policy_keep) < len(every.policy_keep)


def test_skipped_rows_reach_the_reading_ranks(sft, tmp_path, parses, scan_cache, monkeypatch):
    rows = _rows(sft, 6)
    lines = [json.dumps(r) for r in rows] + [json.dumps({k: v for k, v in rows[0].items() if k != "cot"})]
    data = sft.write_dataset(tmp_path / "data", [], {"on_bad_row": "skip"}, raw_lines=lines)
    main = _converter(data)
    monkeypatch.setenv("LOCAL_RANK", "1")
    other = _converter(data)
    assert parses["mix.jsonl"] == 1 and other.bad_rows == main.bad_rows and len(main.bad_rows) == 1


def test_an_unreadable_cache_is_scanned_again(sft, tmp_path, parses, scan_cache, caplog):
    data = sft.write_dataset(tmp_path / "data", _rows(sft))
    good = _converter(data)
    (cache_file,) = scan_cache.glob("*.json")
    cache_file.write_text("{truncated")
    caplog.set_level(logging.WARNING, logger="llamafactory.extra_cot")
    again = _converter(data)
    assert parses["mix.jsonl"] == 2 and again.policy_keep == good.policy_keep
    assert any("unreadable scan cache" in r.getMessage() and str(cache_file) in r.getMessage() for r in caplog.records)
    assert json.loads(cache_file.read_text())["policy_keep"] == list(good.policy_keep)  # rewritten


def test_an_unwritable_cache_still_gives_the_scan(sft, tmp_path, parses, monkeypatch, caplog):
    from datasets import config

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setattr(config, "HF_DATASETS_CACHE", blocker)
    data = sft.write_dataset(tmp_path / "data", _rows(sft))
    caplog.set_level(logging.WARNING, logger="llamafactory.extra_cot")
    converter = _converter(data)
    assert converter.policy_keep and parses["mix.jsonl"] == 1
    assert any("cannot write the scan cache" in r.getMessage() for r in caplog.records)


#: One torchrun rank: LLaMA-Factory's own argument parsing and ``get_dataset`` (whose
#: ``main_process_first`` orders the ranks), with the data-file parses counted.
RANK_SCRIPT = """
import json, os, sys
import extra_cot.sft.scan as scan
parses, real = [], scan.read_records
scan.read_records = lambda path: parses.append(path) or real(path)
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer
model_args, data_args, training_args, _, _ = get_train_args(json.loads(sys.argv[1]))
tokenizer_module = load_tokenizer(model_args)
template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
out = {"parses": len(parses), "examples": len(module["train_dataset"])}
with open(os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.json"), "w") as fh:
    json.dump(out, fh)
"""


@pytest.mark.slow
def test_two_torchrun_ranks_parse_the_file_once(sft, tiny_model_dir, tmp_path):
    import subprocess
    import sys

    from extra_cot.eval.server import free_port

    data = sft.write_dataset(tmp_path / "data", _rows(sft, 30))
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    args = {"model_name_or_path": str(tiny_model_dir), "stage": "sft", "do_train": True, "finetuning_type": "full",
            "dataset": "mix", "dataset_dir": str(data), "template": "qwen3_comp", "cutoff_len": 256,
            "output_dir": str(tmp_path / "out"), "report_to": "none", "bf16": False, "ddp_backend": "gloo"}
    env = dict(os.environ, HF_DATASETS_CACHE=str(tmp_path / "hf_datasets"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(tmp_path / "rank.py"), json.dumps(args), str(tmp_path)]
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["parses"] for r in ranks] == [1, 0], ranks  # the main process parses, rank 1 reads its scan
    assert ranks[0]["examples"] == ranks[1]["examples"] > 30
