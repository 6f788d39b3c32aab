"""``prepare_model``: control tokens as single special ids, rows initialised even with spare rows."""

from __future__ import annotations

import json

import pytest

from extra_cot.tokens import CONTROL_TOKENS


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path)), AutoModelForCausalLM.from_pretrained(str(path))


@pytest.mark.parametrize("init", ["mean", "desc"])
def test_rows_initialised_inside_spare_rows(tiny_base_model_dir, tmp_path, init):
    import torch

    from extra_cot.sft.prepare import prepare_model

    tok0, model0 = _load(tiny_base_model_dir)
    emb0 = model0.get_input_embeddings().weight.detach().clone()
    assert emb0.shape[0] > len(tok0) + len(CONTROL_TOKENS)  # spare rows: no resize needed (Qwen3's case)
    out = prepare_model(tiny_base_model_dir, tmp_path / "prep", init=init)
    tok, model = _load(out)
    emb = model.get_input_embeddings().weight.detach()
    assert emb.shape == emb0.shape
    ids = [tok.convert_tokens_to_ids(t) for t in CONTROL_TOKENS]
    for token, idx in zip(CONTROL_TOKENS, ids):
        assert tok.tokenize(f"x {token} y").count(token) == 1 and idx >= len(tok0)
        assert torch.isfinite(emb[idx]).all() and not torch.allclose(emb[idx], emb0[idx])
    if init == "mean":
        assert torch.allclose(emb[ids[0]], emb0[: len(tok0)].mean(0), atol=1e-6)
    else:
        assert not torch.allclose(emb[ids[0]], emb[ids[1]])  # each token from its own description
    untouched = [i for i in range(emb.shape[0]) if i not in ids and i >= len(tok)]
    assert torch.equal(emb[: len(tok0)], emb0[: len(tok0)]) and torch.equal(emb[untouched], emb0[untouched])
    assert set(CONTROL_TOKENS) <= set(tok.all_special_tokens)
    assert tok.decode(tok.encode("<COMP_20>"), skip_special_tokens=True) == ""
    marker = json.loads((out / "extra_cot_prepare.json").read_text())
    assert marker["new_ids"] == dict(zip(CONTROL_TOKENS, ids))


def test_existing_tokens_keep_their_rows_and_rerun_is_reused(tiny_model_dir, tmp_path):
    import torch

    from extra_cot.sft.prepare import main

    _, model0 = _load(tiny_model_dir)
    out = tmp_path / "prep"
    assert main(["--src", str(tiny_model_dir), "--out", str(out)]) == 0
    _, model = _load(out)
    assert torch.equal(model.get_input_embeddings().weight, model0.get_input_embeddings().weight)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert main(["--src", str(tiny_model_dir), "--out", str(out)]) == 0
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_unknown_init_names_the_valid_ones(tiny_base_model_dir, tmp_path):
    from extra_cot.sft.prepare import prepare_model

    with pytest.raises(ValueError, match=r"valid: \['desc', 'mean'\]"):
        prepare_model(tiny_base_model_dir, tmp_path / "x", init="zeros")
