"""Initialise the rows of tokens LLaMA-Factory adds in a run even when it does not resize.

LLaMA-Factory 0.9.5 initialises new token rows only inside ``resize_embedding_layer`` and
only when the tokenizer outgrew the embedding. Qwen3's embedding has spare rows (151936 rows
for ~151669 tokens), so ``add_special_tokens: <COMP_20>,...`` gives ids inside the matrix and
those rows keep whatever the checkpoint's spare rows held (HOSTS.md). Two wraps fix that:

- ``llamafactory.model.loader.patch_tokenizer`` records which tokens this run added (and
  nothing else: tokens already in the checkpoint's tokenizer, e.g. after
  ``extra-cot prepare-model`` or from an SFT checkpoint, keep their trained rows);
- ``llamafactory.model.patcher.resize_embedding_layer`` (imported there by name) runs the
  host's own resize, then sets the rows of those recorded tokens that lie inside the old
  matrix to the mean of the existing vocabulary's rows (input, and output when untied).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

logger = logging.getLogger("llamafactory.extra_cot.embedding")  # host's handler (see extra_cot.sft.plugin)
NEW_IDS_ATTR = "_extra_cot_new_token_ids"
#: Parameters of the wrapped LLaMA-Factory 0.9.5 functions (checked before wrapping).
WRAPPED_PARAMS = {
    "patch_tokenizer": ("tokenizer", "model_args"),
    "resize_embedding_layer": ("model", "tokenizer", "new_special_tokens_config", "init_special_tokens"),
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


def init_inside_rows(model, new_ids: dict[str, int], rows_before: int) -> dict[str, int]:
    """Mean-initialise rows of ``new_ids`` below ``rows_before``; return the ones set."""
    import torch

    inside = {t: i for t, i in new_ids.items() if 0 <= i < rows_before}
    if not inside:
        return {}
    n_old = min(inside.values())  # rows of the vocabulary that existed before this run
    with _gathered(model), torch.no_grad():
        weights = [model.get_input_embeddings().weight]
        if model.get_output_embeddings() is not None and not model.config.tie_word_embeddings:
            weights.append(model.get_output_embeddings().weight)
        for weight in weights:
            mean = weight[:n_old].float().mean(dim=0).to(weight.dtype)
            for idx in inside.values():
                weight[idx] = mean
    logger.info("extra-cot: initialised embedding rows of tokens added without a resize: %s", inside)
    return inside


def install() -> bool:
    """Wrap ``patch_tokenizer`` and ``resize_embedding_layer`` once; True when done by this call."""
    from llamafactory.model import loader, patcher

    from extra_cot.hostcheck import require_signature, require_version

    if getattr(loader.patch_tokenizer, "__extra_cot__", False):
        return False
    original_patch, original_resize = loader.patch_tokenizer, patcher.resize_embedding_layer
    what = "extra-cot's embedding-row init (wraps llamafactory.model patch_tokenizer / resize_embedding_layer)"
    require_version("llamafactory", None, what)
    for name, original in (("patch_tokenizer", original_patch), ("resize_embedding_layer", original_resize)):
        require_signature(original, WRAPPED_PARAMS[name], what)

    def patch_tokenizer(tokenizer, model_args, *args, **kwargs):
        before = set(tokenizer.get_vocab())
        result = original_patch(tokenizer, model_args, *args, **kwargs)
        added = [t for t in _requested(model_args) if t not in before]
        setattr(tokenizer, NEW_IDS_ATTR, {t: tokenizer.convert_tokens_to_ids(t) for t in added})
        return result

    def resize_embedding_layer(model, tokenizer, *args, **kwargs):
        with _gathered(model):
            rows_before = model.get_input_embeddings().weight.shape[0]
        result = original_resize(model, tokenizer, *args, **kwargs)
        init_inside_rows(model, getattr(tokenizer, NEW_IDS_ATTR, {}), rows_before)
        return result

    for wrapper, original in ((patch_tokenizer, original_patch), (resize_embedding_layer, original_resize)):
        wrapper.__extra_cot__, wrapper.__wrapped__ = True, original
    loader.patch_tokenizer, patcher.resize_embedding_layer = patch_tokenizer, resize_embedding_layer
    return True
