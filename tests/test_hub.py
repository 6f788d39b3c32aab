"""Hub ids everywhere a model or tokenizer is named: resolved by transformers' own loaders from a
locally built Hugging Face cache, offline (``HF_HUB_OFFLINE=1``), by ``ORG/NAME`` and ``@REVISION``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extra_cot import hub

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO / "tests" / "fixtures" / "gsm8k_train_head.jsonl"
HUB_ID = "testorg/tiny-qwen3"
REVISION = "0123456789abcdef0123456789abcdef01234567"  # the commit the cache's refs/main points at


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, tiny_model_dir):
    """An HF hub cache (``models--ORG--NAME/snapshots/<rev>/`` + ``refs/main``) holding the tiny model."""
    cache = tmp_path_factory.mktemp("hf_home") / "hub"
    repo = cache / ("models--" + HUB_ID.replace("/", "--"))
    shutil.copytree(tiny_model_dir, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return cache


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    """``extra-cot ARGS`` in a fresh interpreter that sees only ``cache`` and is offline."""
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "extra_cot.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, check=False)


def test_resolve_local_folder_gguf_file_and_hub_ids(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"")
    assert hub.resolve(tmp_path) == (str(tmp_path), {})
    assert hub.resolve(tmp_path / "m.gguf") == (str(tmp_path), {"gguf_file": "m.gguf"})
    assert hub.resolve("Qwen/Qwen3-1.7B") == ("Qwen/Qwen3-1.7B", {})
    assert hub.resolve("Qwen/Qwen3-1.7B@v1.0") == ("Qwen/Qwen3-1.7B", {"revision": "v1.0"})
    assert hub.resolve("gpt2") == ("gpt2", {})


@pytest.mark.parametrize("spec", ["/no/such/folder", "./missing", "~/missing-model-dir", "a/b/c", "Qwen/Qwen3@"])
def test_resolve_refuses_a_missing_path_naming_the_fix(spec):
    with pytest.raises(FileNotFoundError, match="not a hub id ORG/NAME"):
        hub.resolve(spec)


def test_compress_takes_a_hub_tokenizer_offline(tmp_path, hub_cache):
    out = tmp_path / "c.jsonl"
    base = ["compress", "--input", str(GSM8K), "--input-format", "gsm8k", "--scorer", "heuristic", "--limit", "3"]
    proc = _run([*base, "--output", str(out), "--tokenizer", HUB_ID], hub_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(abs(r - float(k)) <= 0.05 for row in rows for k, r in row["realized"].items())
    pinned = _run([*base, "--output", str(tmp_path / "p.jsonl"), "--tokenizer", f"{HUB_ID}@{REVISION}"], hub_cache)
    assert pinned.returncode == 0, pinned.stderr[-3000:]
    assert (tmp_path / "p.jsonl").read_text() == out.read_text()  # same snapshot, same output


def test_an_uncached_hub_id_fails_naming_the_cache_and_the_fix(tmp_path, hub_cache):
    proc = _run(["compress", "--input", str(GSM8K), "--input-format", "gsm8k", "--scorer", "heuristic",
                 "--limit", "1", "--output", str(tmp_path / "c.jsonl"), "--tokenizer", "testorg/absent"], hub_cache)
    assert proc.returncode != 0
    for needle in ("'testorg/absent' is not a local folder", "HF_HUB_OFFLINE on", str(hub_cache), "hf download"):
        assert needle in proc.stderr, proc.stderr[-3000:]


def test_prepare_model_takes_a_hub_id_offline(tmp_path, hub_cache):
    out = tmp_path / "prepared"
    proc = _run(["prepare-model", "--src", HUB_ID, "--out", str(out)], hub_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    marker = json.loads((out / "extra_cot_prepare.json").read_text())
    assert marker["src_dir"] == HUB_ID
