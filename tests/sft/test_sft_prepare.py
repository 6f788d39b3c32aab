"""``prepare_model``: control tokens as single special ids, rows initialised even with spare rows."""

from __future__ import annotations

import json

import pytest

from extra_cot.tokens import CONTROL_TOKENS

from .conftest import assert_distinct_norm_matched


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path)), AutoModelForCausalLM.from_pretrained(str(path))


@pytest.mark.parametrize("init", ["mean", "desc", "distinct"])
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
    elif init == "distinct":
        assert_distinct_norm_matched(emb, ids, len(tok0))
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

    with pytest.raises(ValueError, match=r"valid: \['desc', 'distinct', 'mean'\]"):
        prepare_model(tiny_base_model_dir, tmp_path / "x", init="zeros")


def test_default_init_is_distinct_and_reproducible(tiny_base_model_dir, tmp_path):
    from extra_cot.sft.prepare import main

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["--src", str(tiny_base_model_dir), "--out", str(a)]) == 0
    assert main(["--src", str(tiny_base_model_dir), "--out", str(b)]) == 0
    tok, model = _load(a)
    _, model_b = _load(b)
    ids = [tok.convert_tokens_to_ids(t) for t in CONTROL_TOKENS]
    emb = model.get_input_embeddings().weight.detach()
    assert json.loads((a / "extra_cot_prepare.json").read_text())["init"] == "distinct"
    assert_distinct_norm_matched(emb, ids, min(ids))
    assert (emb[ids] == model_b.get_input_embeddings().weight.detach()[ids]).all()  # seeded by the token
    # tied model: the output rows are the same rows, so the output side is apart too
    assert model.config.tie_word_embeddings
    assert (model.get_output_embeddings().weight.detach()[ids] == emb[ids]).all()


def test_smollm2_sized_rows_distinct_and_norm_matched():
    """The init on a matrix with SmolLM2-like statistics (576 dims, rows of varied norm)."""
    import torch

    from extra_cot.sft.prepare import _INITS

    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(2000, 576, generator=gen) * torch.rand(2000, 1, generator=gen) * 0.2 + 0.01

    class Tok:
        def encode(self, text, add_special_tokens=False):
            return [hash(w) % 2000 for w in text.split()]

    rows = torch.stack([_INITS["distinct"](weight, 2000, Tok(), t) for t in CONTROL_TOKENS])
    mean_rows = torch.stack([_INITS["mean"](weight, 2000, Tok(), t) for t in CONTROL_TOKENS])
    assert (mean_rows == mean_rows[0]).all()  # what the old default did: one row for all tokens
    median = weight.norm(dim=1).median()
    assert torch.allclose(rows.norm(dim=1), median.expand(len(CONTROL_TOKENS)), rtol=1e-4)
    cos = torch.nn.functional.cosine_similarity(rows[:, None], rows[None], dim=-1)
    assert (cos - torch.eye(len(CONTROL_TOKENS))).abs().max() < 0.5
