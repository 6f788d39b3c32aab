"""Initialise the rows of tokens LLaMA-Factory adds in a run even when it does not resize.

LLaMA-Factory 0.9.5 initialises new token rows only inside ``resize_embedding_layer`` and
only when the tokenizer outgrew the embedding. Qwen3's embedding has spare rows (151936 rows
for ~151669 tokens), so ``add_special_tokens: <COMP_20>,...`` gives ids inside the matrix and
those rows keep whatever the checkpoint's spare rows held (docs/hosts.md). Two wraps fix that:

- ``llamafactory.model.loader.patch_tokenizer`` records which tokens this run added (and
  nothing else: tokens already in the checkpoint's tokenizer, e.g. after
  ``extra-cot prepare-model`` or from an SFT checkpoint, keep their trained rows);
- ``llamafactory.model.patcher.resize_embedding_layer`` (imported there by name) runs the
  host's own resize, then gives each recorded token its own starting row, inside the old matrix
  or in the rows the host appended: ``extra-cot prepare-model``'s default ``distinct`` init
  (description + seeded noise at the median norm of the existing rows; input, and output when
  untied: tied models share the row).

A third wrap makes LoRA and freeze runs *train* the control rows. LLaMA-Factory makes
``embed_tokens``/``lm_head`` trainable only when it resized the vocabulary itself
(``llamafactory/model/adapter.py``: ``resize_vocab`` -> ``additional_target``); on a checkpoint
from ``prepare-model`` the control rows would stay frozen at their start. So
``llamafactory.model.loader.init_adapter`` is wrapped: when the tokenizer holds control tokens
and ``finetuning_type`` is ``lora``/``oft``, ``additional_target`` (PEFT ``modules_to_save``) gets
the embedding and output modules (a tied output layer follows the embedding: LoRA builds its
config with PEFT's ``ensure_weight_tying``, so training and the merged export keep one shared
row); for ``freeze`` they join ``freeze_extra_modules``. A user value
of either option that leaves them out stops the run with an error naming the option.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext

logger = logging.getLogger("llamafactory.extra_cot.embedding")  # host's handler (see extra_cot.sft.plugin)
NEW_IDS_ATTR = "_extra_cot_new_token_ids"
#: Parameters of the wrapped LLaMA-Factory 0.9.5 functions (checked before wrapping).
WRAPPED_PARAMS = {
    "patch_tokenizer": ("tokenizer", "model_args"),
    "resize_embedding_layer": ("model", "tokenizer", "new_special_tokens_config", "init_special_tokens"),
    "init_adapter": ("config", "model", "model_args", "finetuning_args", "is_trainable"),
}


def _requested(model_args) -> list[str]:
    tokens = []
    for value in (model_args.add_tokens, model_args.add_special_tokens):
        if isinstance(value, str):
            value = value.split(",")
        tokens += [t.strip() for t in (value or []) if t and t.strip()]
    return tokens


def _gathered(model):
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        return nullcontext()
    import deepspeed  # type: ignore  # only under ZeRO-3, as in the host's own resize

    params = [model.get_input_embeddings().weight]
    if model.get_output_embeddings() is not None and not model.config.tie_word_embeddings:
        params.append(model.get_output_embeddings().weight)
    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


def init_new_rows(model, tokenizer, new_ids: dict[str, int]) -> dict[str, int]:
    """Give every token of ``new_ids`` its own ``distinct`` starting row (see
    :mod:`extra_cot.sft.prepare`), whether its row lay inside the old matrix or was appended by
    the host's resize; return the ones set."""
    import torch

    from extra_cot.sft.prepare import distinct_row

    rows = model.get_input_embeddings().weight.shape[0]
    todo = {t: i for t, i in new_ids.items() if 0 <= i < rows}
    if not todo:
        return {}
    n_old = min(todo.values())  # rows of the vocabulary that existed before this run
    with _gathered(model), torch.no_grad():
        weights = [model.get_input_embeddings().weight]
        if model.get_output_embeddings() is not None and not model.config.tie_word_embeddings:
            weights.append(model.get_output_embeddings().weight)
        for weight in weights:
            for token, idx in todo.items():
                weight[idx] = distinct_row(weight, n_old, tokenizer, token).to(weight.dtype)
    logger.info("extra-cot: gave the tokens this run added their own (distinct) embedding rows: %s", todo)
    return todo


#: Set by the ``patch_tokenizer`` wrap: does this process's tokenizer hold control tokens?
_control_in_vocab = {"value": False}


def is_tied(model) -> bool:
    """Do the input and output embeddings share one weight (SmolLM2, Qwen3 <= 4B)?"""
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def embedding_module_names(model) -> list[str]:
    """Short names of the input/output embedding modules (``embed_tokens``, ``lm_head``), as
    LLaMA-Factory's own ``resize_vocab`` branch computes them for ``additional_target``. A tied
    output layer is left out: it shares the input's weight (for LoRA, PEFT's
    ``ensure_weight_tying`` ties it to the trained copy, see :func:`lora_ties_weights`)."""
    targets = [model.get_input_embeddings()] + ([] if is_tied(model) else [model.get_output_embeddings()])
    return sorted({name.split(".")[-1] for name, module in model.named_modules()
                   if name and any(module is t for t in targets if t is not None)})


@contextmanager
def lora_ties_weights():
    """While LLaMA-Factory builds its ``LoraConfig``, set PEFT's ``ensure_weight_tying=True``: the
    tied ``lm_head`` then uses the trainable copy of ``embed_tokens`` (``modules_to_save``) in
    training and after merging, instead of a frozen or separately trained duplicate."""
    from llamafactory.model import adapter

    original = adapter.LoraConfig

    def tied_lora_config(*args, **kwargs):
        kwargs.setdefault("ensure_weight_tying", True)
        return original(*args, **kwargs)

    adapter.LoraConfig = tied_lora_config
    try:
        yield
    finally:
        adapter.LoraConfig = original


def ensure_trainable_rows(model, finetuning_args) -> list[str]:
    """Make the embedding (and output) rows trainable for lora/oft/freeze; return what was added.

    Raises ``ValueError`` naming the option when the user set it without those modules.
    """
    kind = finetuning_args.finetuning_type
    if kind in ("lora", "oft"):
        names = embedding_module_names(model)
        option, current = "additional_target", finetuning_args.additional_target
    elif kind == "freeze":
        # freeze matches parameter names; a tied lm_head has no parameter of its own
        present = {n.split(".")[-2] for n, _ in model.named_parameters() if n.count(".") >= 1}
        names = [n for n in embedding_module_names(model) if n in present]
        option, current = "freeze_extra_modules", finetuning_args.freeze_extra_modules
    else:
        return []
    if current is None:
        setattr(finetuning_args, option, list(names))
        logger.warning("extra-cot: the vocabulary holds control tokens; finetuning_type=%s would keep their rows "
                       "frozen, so %s=%s (embedding and output rows trainable)", kind, option, ",".join(names))
        return list(names)
    missing = [n for n in names if n not in current]
    if missing:
        raise ValueError(
            f"extra-cot: the vocabulary holds control tokens (<COMP_xx>) but {option}={','.join(current)} leaves "
            f"{','.join(missing)} frozen, so the control rows would never train under finetuning_type={kind}; "
            f"set {option}: {','.join(sorted(set(current) | set(names)))}")
    return []


def install() -> bool:
    """Wrap ``patch_tokenizer``, ``resize_embedding_layer`` and ``init_adapter`` once; True when
    done by this call."""
    from llamafactory.model import loader, patcher

    from extra_cot.hostcheck import require_signature, require_version
    from extra_cot.tokens import CONTROL_TOKENS

    if getattr(loader.patch_tokenizer, "__extra_cot__", False):
        return False
    original_patch, original_resize = loader.patch_tokenizer, patcher.resize_embedding_layer
    original_adapter = loader.init_adapter
    what = ("extra-cot's embedding-row init and trainable control rows (wraps llamafactory.model "
            "patch_tokenizer / resize_embedding_layer / loader.init_adapter)")
    require_version("llamafactory", None, what)
    for name, original in (("patch_tokenizer", original_patch), ("resize_embedding_layer", original_resize),
                           ("init_adapter", original_adapter)):
        require_signature(original, WRAPPED_PARAMS[name], what)

    def patch_tokenizer(tokenizer, model_args, *args, **kwargs):
        before = set(tokenizer.get_vocab())
        result = original_patch(tokenizer, model_args, *args, **kwargs)
        added = [t for t in _requested(model_args) if t not in before]
        setattr(tokenizer, NEW_IDS_ATTR, {t: tokenizer.convert_tokens_to_ids(t) for t in added})
        _control_in_vocab["value"] = bool(set(CONTROL_TOKENS) & set(tokenizer.get_vocab()))
        return result

    def resize_embedding_layer(model, tokenizer, *args, **kwargs):
        result = original_resize(model, tokenizer, *args, **kwargs)
        init_new_rows(model, tokenizer, getattr(tokenizer, NEW_IDS_ATTR, {}))
        return result

    def init_adapter(config, model, model_args, finetuning_args, is_trainable, *args, **kwargs):
        tie = nullcontext()
        if is_trainable and _control_in_vocab["value"] and not getattr(model_args, "adapter_name_or_path", None):
            ensure_trainable_rows(model, finetuning_args)
            if finetuning_args.finetuning_type == "lora" and is_tied(model):
                tie = lora_ties_weights()
        with tie:
            return original_adapter(config, model, model_args, finetuning_args, is_trainable, *args, **kwargs)

    wraps = ((patch_tokenizer, original_patch), (resize_embedding_layer, original_resize),
             (init_adapter, original_adapter))
    for wrapper, original in wraps:
        wrapper.__extra_cot__, wrapper.__wrapped__ = True, original
    loader.patch_tokenizer, patcher.resize_embedding_layer = patch_tokenizer, resize_embedding_layer
    loader.init_adapter = init_adapter
    return True
