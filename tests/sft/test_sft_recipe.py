"""The canonical Stage 2 YAML carries the paper's recipe (docs/method.md) and only keys the host knows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "examples" / "qwen3-1.7b_mixed.yaml"


def test_paper_hyperparameters():
    cfg = yaml.safe_load(RECIPE.read_text())
    expected = {"stage": "sft", "finetuning_type": "full", "template": "qwen3_comp", "learning_rate": 2e-5,
                    "lr_scheduler_type": "cosine", "warmup_ratio": 0.05, "weight_decay": 0.05, "num_train_epochs": 3.0,
                    "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8, "cutoff_len": 6144, "bf16": True}
    assert {k: cfg[k] for k in expected} == expected
    ds = json.loads((REPO / cfg["deepspeed"]).read_text())
    assert ds["zero_optimization"]["stage"] == 3


def test_attention_is_one_the_gpu_install_has():
    """SDPA, not LLaMA-Factory's `auto` (the GPU install has no flash-attn: docs/hosts.md, "The GPU recipe")."""
    assert yaml.safe_load(RECIPE.read_text())["flash_attn"] == "sdpa"


def test_every_key_is_a_llamafactory_argument():
    pytest.importorskip("llamafactory")
    from dataclasses import fields

    from llamafactory.hparams import DataArguments, FinetuningArguments, ModelArguments, TrainingArguments

    known = {f.name for cls in (ModelArguments, DataArguments, FinetuningArguments, TrainingArguments)
             for f in fields(cls)}
    assert set(yaml.safe_load(RECIPE.read_text())) <= known
