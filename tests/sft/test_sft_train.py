"""Real ``llamafactory-cli train`` of the tiny model on multi-ratio rows (the canonical YAML plus
``key=value`` overrides), single process and 2-rank torchrun over gloo, full / LoRA / packing.

Each run saves LLaMA-Factory's own tokenized dataset (``tokenized_path``) so the expanded
examples are checked as the trainer saw them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llamafactory")
from extra_cot.sft.mixture import MixtureConfig, expand_row, policy_key, select_policy_rows
from extra_cot.tokens import CONTROL_TOKENS

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("llamafactory-cli")
TINY = ("deepspeed=null bf16=false max_steps=2 per_device_train_batch_size=2 gradient_accumulation_steps=1 "
        "cutoff_len=1024 dataloader_num_workers=0 logging_steps=1 save_strategy=steps save_steps=1000 "
        "plot_loss=false overwrite_cache=false")


def _train(tmp_path: Path, model_dir, overrides: str, env: dict | None = None) -> tuple[Path, str]:
    out = tmp_path / "out"
    args = [str(CLI), "train", str(REPO / "examples" / "qwen3-1.7b_mixed.yaml"), f"model_name_or_path={model_dir}",
            f"dataset_dir={REPO / 'data_templates'}", "dataset=extra_cot_sample", f"output_dir={out}",
            f"tokenized_path={tmp_path / 'tokenized'}", *TINY.split(), *overrides.split()]
    # LLaMA-Factory launches `torchrun` from PATH: the venv's bin, as in an activated venv
    path = f"{CLI.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = {**os.environ, "PATH": path, "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets"), **(env or {})}
    proc = subprocess.run(args, check=False, capture_output=True, text=True, env=full_env, timeout=600, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    return out, log


def _expected_responses() -> list[str]:
    rows = [json.loads(x) for x in (REPO / "data_templates" / "extra_cot_sample.jsonl").read_text().splitlines()]
    mixture = MixtureConfig.from_dict(json.loads((REPO / "data_templates" / "dataset_info.json").read_text())
                                      ["extra_cot_sample"]["extra_cot"])
    keep = select_policy_rows(rows, mixture)
    return [e.user + "\x00" + e.response for r in rows for e in expand_row(r, mixture, policy_key(r) in keep)]


def _check_tokenizer(out: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    for token in CONTROL_TOKENS:
        assert tok.tokenize(f"q {token}").count(token) == 1 and token in tok.all_special_tokens


def _trained_texts(tmp_path: Path, out: Path) -> list[str]:
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    data = load_from_disk(str(tmp_path / "tokenized"))["train"]
    return [tok.decode([t for t in ex["labels"] if t != -100], skip_special_tokens=False) for ex in data]


@pytest.mark.slow
def test_single_process_full_finetune_with_workers(tmp_path, tiny_model_dir):
    out, log = _train(tmp_path, tiny_model_dir, "finetuning_type=full preprocessing_num_workers=2")
    assert (out / "model.safetensors").exists()
    _check_tokenizer(out)
    expected = _expected_responses()
    trained = _trained_texts(tmp_path, out)
    assert sorted(trained) == sorted(e.split("\x00")[1] + "<|im_end|>\n" for e in expected)
    assert "extra-cot Stage 2 plugin active" in log


@pytest.mark.slow
def test_single_process_lora_packing(tmp_path, tiny_model_dir):
    out, _ = _train(tmp_path, tiny_model_dir, "finetuning_type=lora lora_rank=4 packing=true")
    assert (out / "adapter_model.safetensors").exists()
    _check_tokenizer(out)
    trained = "".join(_trained_texts(tmp_path, out))
    assert trained.count("<|im_end|>") == len(_expected_responses())
    # `llamafactory-cli export` (another fresh process) finds qwen3_comp too and merges the adapter
    merged = tmp_path / "merged"
    proc = subprocess.run([str(CLI), "export", "--model_name_or_path", str(tiny_model_dir), "--adapter_name_or_path",
                           str(out), "--template", "qwen3_comp", "--finetuning_type", "lora", "--export_dir", str(merged)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (merged / "model.safetensors").exists()
    _check_tokenizer(merged)


@pytest.mark.slow
def test_torchrun_two_ranks_lora_packing(tmp_path, tiny_model_dir):
    env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "OMP_NUM_THREADS": "1"}
    out, log = _train(tmp_path, tiny_model_dir, "finetuning_type=lora lora_rank=4 packing=true", env)
    assert (out / "adapter_model.safetensors").exists()
    _check_tokenizer(out)
    assert "(rank 0," in log and "(rank 1," in log  # the plugin registered itself in both ranks
    trained = "".join(_trained_texts(tmp_path, out))
    expected = _expected_responses()
    for e in expected:
        assert e.split("\x00")[1] + "<|im_end|>\n" in trained
    assert trained.count("<|im_end|>") == len(expected)


@pytest.mark.slow
def test_lora_trains_and_exports_the_control_rows(tmp_path, tiny_base_model_dir):
    """A `prepare-model` checkpoint (LLaMA-Factory does not resize it, so on its own it would keep
    embed_tokens frozen): a real LoRA run changes the control rows, and the merged export keeps them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from extra_cot.sft.prepare import prepare_model

    prepared = prepare_model(tiny_base_model_dir, tmp_path / "prepared")
    out, log = _train(tmp_path, prepared, "finetuning_type=lora lora_rank=4 max_steps=3 learning_rate=5e-3")
    assert "additional_target=embed_tokens" in log  # the plugin's own line: it made the rows trainable
    merged = tmp_path / "merged"
    proc = subprocess.run([str(CLI), "export", "--model_name_or_path", str(prepared), "--adapter_name_or_path",
                           str(out), "--template", "qwen3_comp", "--finetuning_type", "lora", "--export_dir", str(merged)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    tok = AutoTokenizer.from_pretrained(str(prepared))
    ids = [tok.convert_tokens_to_ids(t) for t in CONTROL_TOKENS]
    before = AutoModelForCausalLM.from_pretrained(str(prepared))
    after = AutoModelForCausalLM.from_pretrained(str(merged))
    emb0, emb1 = before.get_input_embeddings().weight.detach(), after.get_input_embeddings().weight.detach()
    # the control tokens the training examples hold (the sample's fixed ratios) moved
    moved = [(emb1[i] - emb0[i]).norm().item() for i in ids]
    assert sum(m > 1e-4 for m in moved) >= 4, moved
    # the output side of the tied model carries the same trained rows after export
    assert torch.equal(after.get_output_embeddings().weight.detach()[ids], emb1[ids])
