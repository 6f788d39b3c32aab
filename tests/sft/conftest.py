"""Stage 2 test helpers: multi-ratio rows and LLaMA-Factory's real data pipeline in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "data_templates"


def make_row(i: int, gt_ratio: float | None = None, missing: tuple[str, ...] = ()) -> dict:
    """A valid multi-ratio row whose texts name their ratio (so tests can tell them apart)."""
    row = {
        "question": f"Question {i}: what is {i} + {i}?",
        "cot": f"full reasoning {i}: {i} + {i} = {2 * i}.",
        "answer": f"The answer is \\boxed{{{2 * i}}}.",
        "compressed": {k: f"r{k} reasoning {i}" for k in ("0.2", "0.4", "0.6", "0.8") if k not in missing},
    }
    if gt_ratio is not None:
        row["gt_ratio"] = gt_ratio
    return row


def write_dataset(data_dir: Path, rows: list, entry_extra: dict | None = None, name: str = "mix",
                  raw_lines: list[str] | None = None) -> Path:
    """Write ``rows`` (or raw JSONL lines) and a dataset_info.json entry for them."""
    from extra_cot.sft.mixture import MixtureConfig, dataset_info_entry

    data_dir.mkdir(parents=True, exist_ok=True)
    lines = raw_lines if raw_lines is not None else [json.dumps(r) for r in rows]
    (data_dir / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    entry = dataset_info_entry(f"{name}.jsonl", MixtureConfig())
    entry["extra_cot"].update(entry_extra or {})
    (data_dir / "dataset_info.json").write_text(json.dumps({name: entry}, indent=2))
    return data_dir


def lf_train_dataset(model_dir, data_dir, out_dir, name: str = "mix", **overrides):
    """LLaMA-Factory's own argument parsing, tokenizer, template and ``get_dataset``."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = {
        "model_name_or_path": str(model_dir), "stage": "sft", "do_train": True, "finetuning_type": "full",
        "dataset": name, "dataset_dir": str(data_dir), "template": "qwen3_comp", "cutoff_len": 512,
        "output_dir": str(out_dir), "overwrite_output_dir": True, "report_to": "none", "bf16": False,
        "per_device_train_batch_size": 1,
    }
    args.update(overrides)
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    return module["train_dataset"], tokenizer_module["tokenizer"]


def decode_examples(dataset, tokenizer) -> list[tuple[str, str]]:
    """(full text, trained text) of each tokenized example."""
    out = []
    for ex in dataset:
        labels = [t for t in ex["labels"] if t != -100]
        out.append((tokenizer.decode(ex["input_ids"], skip_special_tokens=False),
                    tokenizer.decode(labels, skip_special_tokens=False)))
    return out


@pytest.fixture
def sft_rows():
    return [make_row(0, 0.2), make_row(1, 0.4), make_row(2, None, missing=("0.2",)), make_row(3, 1.0)]


@pytest.fixture(scope="session")
def sft():
    """The helpers above (test modules cannot import a conftest under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(make_row=make_row, write_dataset=write_dataset, lf_train_dataset=lf_train_dataset,
                           decode_examples=decode_examples, SAMPLE_DIR=SAMPLE_DIR, REPO=REPO)


def assert_distinct_norm_matched(emb, ids, n_old):
    """Every pair of control rows far apart (cosine < 0.5) and each norm inside the existing rows' range."""
    import torch

    rows = emb[ids].float()
    norms = emb[:n_old].float().norm(dim=1)
    lo, hi = torch.quantile(norms, 0.05).item(), torch.quantile(norms, 0.95).item()
    for i in range(len(ids)):
        assert lo <= rows[i].norm().item() <= hi, (rows[i].norm().item(), lo, hi)
        for j in range(i + 1, len(ids)):
            cos = torch.nn.functional.cosine_similarity(rows[i], rows[j], dim=0).item()
            assert cos < 0.5, (ids[i], ids[j], cos)
