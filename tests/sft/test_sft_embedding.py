"""LLaMA-Factory's own ``add_special_tokens`` on a model with spare embedding rows (Qwen3's case):
the host alone leaves the new rows as they were; with the plugin they are initialised."""

from __future__ import annotations

import pytest

pytest.importorskip("llamafactory")

from extra_cot.tokens import CONTROL_TOKENS

from .conftest import assert_distinct_norm_matched


def _load_with_lf(model_dir, out_dir, finetuning_type="full", trainable=False, **extra):
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    args = {"model_name_or_path": str(model_dir), "stage": "sft", "do_train": True, "finetuning_type": finetuning_type,
            "dataset": "x", "template": "qwen3_comp", "output_dir": str(out_dir), "report_to": "none", "bf16": False,
            "add_special_tokens": ",".join(CONTROL_TOKENS), **extra}
    model_args, _, _, finetuning_args, _ = get_train_args(args)
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    return tokenizer, load_model(tokenizer, model_args, finetuning_args, is_trainable=trainable)


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
    assert_distinct_norm_matched(emb, ids, n_old)  # each token its own row, an ordinary row's norm
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


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("kind", ["lora", "freeze"])
def test_lora_and_freeze_train_the_control_rows(tiny_model_dir, tmp_path, kind):
    """A prepared checkpoint (control tokens already in the vocab: LLaMA-Factory does not resize and
    would freeze embed_tokens): the plugin makes the embedding trainable."""
    from extra_cot.sft.plugin import register

    register("model")
    _, model = _load_with_lf(tiny_model_dir, tmp_path / kind, kind, trainable=True, add_special_tokens=None)
    names = _trainable(model)
    assert any("embed_tokens" in n for n in names), sorted(names)[:20]
    if kind == "lora":
        assert any("lora_" in n for n in names)
        # tied model: the output layer uses the trainable copy of the embedding (PEFT ensure_weight_tying)
        emb = model.get_input_embeddings()
        trained = emb.modules_to_save["default"].weight
        assert model.get_output_embeddings().weight is trained and trained.requires_grad


def test_host_alone_freezes_the_control_rows(tiny_model_dir, tmp_path):
    """Without the wrap LLaMA-Factory's LoRA keeps embed_tokens frozen on a prepared checkpoint: the bug."""
    from llamafactory.model import loader

    from extra_cot.sft.plugin import register

    register("model")
    wrapped = loader.init_adapter
    try:
        loader.init_adapter = wrapped.__wrapped__
        _, model = _load_with_lf(tiny_model_dir, tmp_path / "x", "lora", trainable=True, add_special_tokens=None)
    finally:
        loader.init_adapter = wrapped
    assert not any("embed_tokens" in n for n in _trainable(model))


@pytest.mark.parametrize(("kind", "option"), [("lora", "additional_target"), ("freeze", "freeze_extra_modules")])
def test_user_option_without_embeddings_stops_naming_it(tiny_model_dir, tmp_path, kind, option):
    from extra_cot.sft.plugin import register

    register("model")
    value = "norm" if kind == "freeze" else "q_proj"
    with pytest.raises(ValueError, match=rf"{option}: .*embed_tokens"):
        _load_with_lf(tiny_model_dir, tmp_path / "x", kind, trainable=True, add_special_tokens=None, **{option: value})
