"""LLaMA-Factory's own ``add_special_tokens`` on a model with spare embedding rows (Qwen3's case):
the host alone leaves the new rows as they were; with the plugin they are initialised."""

from __future__ import annotations

import pytest

pytest.importorskip("llamafactory")

from extra_cot.tokens import CONTROL_TOKENS


def _load_with_lf(model_dir, out_dir):
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    args = {"model_name_or_path": str(model_dir), "stage": "sft", "do_train": True, "finetuning_type": "full",
                "dataset": "x", "template": "qwen3_comp", "output_dir": str(out_dir), "report_to": "none", "bf16": False,
                "add_special_tokens": ",".join(CONTROL_TOKENS)}
    model_args, _, _, finetuning_args, _ = get_train_args(args)
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    return tokenizer, load_model(tokenizer, model_args, finetuning_args, is_trainable=False)


def test_new_rows_initialised_without_resize(tiny_base_model_dir, tmp_path):
    import torch
    from llamafactory.model import loader, patcher
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from extra_cot.sft.plugin import register

    register("model")
    assert getattr(patcher.resize_embedding_layer, "__extra_cot__", False)
    n_old = len(AutoTokenizer.from_pretrained(str(tiny_base_model_dir)))
    emb0 = AutoModelForCausalLM.from_pretrained(str(tiny_base_model_dir)).get_input_embeddings().weight.detach()

    tokenizer, model = _load_with_lf(tiny_base_model_dir, tmp_path / "a")
    emb = model.get_input_embeddings().weight.detach()
    ids = [tokenizer.convert_tokens_to_ids(t) for t in CONTROL_TOKENS]
    assert emb.shape == emb0.shape and all(n_old <= i < emb0.shape[0] for i in ids)  # no resize happened
    for i in ids:
        assert torch.isfinite(emb[i]).all() and not torch.allclose(emb[i], emb0[i])
        assert torch.allclose(emb[i], emb0[:n_old].mean(0), atol=1e-6)
    assert torch.equal(emb[:n_old], emb0[:n_old])

    # the host alone (wraps bypassed) leaves the spare rows untouched: the bug this fixes
    wrapped = loader.patch_tokenizer, patcher.resize_embedding_layer
    try:
        loader.patch_tokenizer, patcher.resize_embedding_layer = (w.__wrapped__ for w in wrapped)
        _, stock = _load_with_lf(tiny_base_model_dir, tmp_path / "b")
    finally:
        loader.patch_tokenizer, patcher.resize_embedding_layer = wrapped
    assert torch.equal(stock.get_input_embeddings().weight.detach()[ids], emb0[ids])


def test_tokens_already_present_keep_their_rows(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from extra_cot.sft.plugin import register

    register("model")
    emb0 = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).get_input_embeddings().weight.detach()
    _, model = _load_with_lf(tiny_model_dir, tmp_path / "a")
    assert torch.equal(model.get_input_embeddings().weight.detach(), emb0)
