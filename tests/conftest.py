"""Shared fixtures: everything runs offline on CPU with locally built models."""

from __future__ import annotations

import os

import pytest

# Nothing may reach a hub; Ray's token auth is off for local clusters (docs/hosts.md).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Qwen3-style model whose tokenizer already holds the six control tokens."""
    from extra_cot.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), control_tokens=True)


@pytest.fixture(scope="session")
def tiny_base_model_dir(tmp_path_factory):
    """The same tiny model without control tokens (a 'base model' before Stage 2)."""
    from extra_cot.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_base_model"), control_tokens=False)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="session")
def vllm_server(tiny_model_dir, tmp_path_factory):
    """A REAL vLLM OpenAI server (CPU) serving the tiny control-token model as local_core_model,
    with our think markers as its reasoning config (requests may set ``thinking_token_budget``;
    requests without it are served as without the flag).

    Start-up takes 45-80 s on 2 cores (docs/hosts.md); use only from tests marked ``slow``.
    """
    from extra_cot.eval.server import VLLMServer, reasoning_config_args

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with VLLMServer(tiny_model_dir, served_model_name="local_core_model", max_model_len=2048, log_path=log,
                    extra_args=reasoning_config_args()) as server:
        yield server
