"""LoRA RL with the control-token rows trainable (verl 0.9.1's FSDP engine, peft 0.18.1).

verl builds its peft config from ``actor_rollout_ref.model.{lora_rank, lora_alpha, target_modules,
target_parameters, exclude_modules}`` only (``verl/workers/engine/fsdp/transformer_impl.py:359-368``,
``FSDPEngine._build_lora_module``): with the default ``all-linear`` targets the embedding is frozen,
so the rows of ``<COMP_20>`` … ``<COMP_AUTO>`` — new tokens whose rows Stage 2 trained from
scratch — could not move in RL, and nothing in verl's config reaches peft's
``trainable_token_indices``. This adapter, loaded with the verl plugin in every verl process,
wraps two methods of ``FSDPEngine`` (each after checking the verl and peft versions and the wrapped
signatures; it refuses otherwise):

1. ``_build_lora_module``: when LoRA is on and the tokenizer has control tokens, the ``LoraConfig``
   verl builds also gets ``trainable_token_indices={"embed_tokens": <their ids>}``. peft then trains
   a delta for exactly those rows (``...embed_tokens.token_adapter.trainable_tokens_delta``); with
   tied embeddings (Qwen3-0.6B/1.7B/4B) the LM head's rows follow the same delta, registered once
   (:func:`register_tied_rows_once`). Every other row stays frozen. ``disable_adapter()`` (verl's
   reference policy with LoRA) turns the delta off too, so the KL term sees the rows' drift.
   Untied models are refused (not run: verl's FSDP2 shards their embedding as its own unit, whose
   weight peft's row layer reads outside that unit's forward).
2. ``_merged_lora_per_tensor_param`` (the weight sync to vLLM with ``model.lora.merge=true``): verl
   merges only ``LoraLayer``s, and its name normalisation turns the wrapped embedding into
   ``model.embed_tokens.token_adapter.weight`` plus a ``...trainable_tokens_delta.default`` tensor,
   names vLLM's loader rejects. The wrapper folds each delta into its rows and sends
   ``model.embed_tokens.weight`` (and ``lm_head.weight``): vLLM samples with the trained rows.

verl's other sync (``model.lora.merge=false``) sends the adapter to vLLM's LoRA runtime, which has
no trainable-token rows: with control rows on, that setting is refused at model build.
``+actor_rollout_ref.model.lora.extra_cot_control_rows=false`` keeps verl's behaviour (rows frozen).

Checkpoints: verl's FSDP checkpoint (``global_step_N/actor/model_world_size_*``) holds the LoRA
A/B tensors, the frozen base and the row delta under peft's names; ``python -m
extra_cot.rl.lora_merge`` turns it into one plain HF folder (docs/hosts.md, "LoRA RL").
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from extra_cot.hostcheck import UntestedHostError, require_signature, require_version
from extra_cot.tokens import CONTROL_TOKENS

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("EXTRA_COT_LOG_LEVEL", "INFO"))  # verl sets the root logger to WARNING

#: Key under ``actor_rollout_ref.model.lora`` (verl's free-form LoRA dict) that switches the rows off.
OPTION = "extra_cot_control_rows"
#: peft's module key for the input embedding (matched as a name suffix).
EMBEDDING = "embed_tokens"
WHAT = "extra_cot.rl.lora (LoRA RL with trainable control-token rows)"
#: peft releases this adapter was written against (verl's pin is the project's own).
TESTED = {"verl": None, "peft": ("0.18.1",)}
FSDP_ENGINE = "verl.workers.engine.fsdp.transformer_impl"

_DELTA_RE = re.compile(r"^(?P<prefix>.+)\.token_adapter\.trainable_tokens_delta(\.[^.]+)?$")
_BASE_RE = re.compile(r"^(?P<prefix>.+)\.token_adapter\.weight$")


def control_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the control tokens the tokenizer knows (empty when it has none of them)."""
    if tokenizer is None:
        return []
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in CONTROL_TOKENS if t in vocab]


def rows_enabled(lora_options: Mapping | None) -> bool:
    """``actor_rollout_ref.model.lora.extra_cot_control_rows`` (default true)."""
    value = (lora_options or {}).get(OPTION, True)
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off")
    return bool(value)


def fold_token_rows(params: Iterable[tuple[str, Any]], indices: Mapping[str, Any],
                    tied: Mapping[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """Weight-sync stream with each trainable-token delta folded into its rows.

    ``params`` yields verl's normalised names: ``P.token_adapter.weight`` (the frozen base) and
    ``P.token_adapter.trainable_tokens_delta[.adapter]`` (the trained rows, in ``indices[P]`` order);
    they become one ``P.weight``. A prefix in ``tied`` (a tied LM head) has no delta of its own and
    takes its source's. Other tensors pass through unchanged. Raises when a base is left without its
    delta at the end of the stream, or a prefix is unknown.
    """
    tied = dict(tied or {})
    bases: dict[str, Any] = {}
    deltas: dict[str, Any] = {}
    for name, tensor in params:
        match = _BASE_RE.match(name) or _DELTA_RE.match(name)
        if match is None:
            yield name, tensor
            continue
        prefix = match["prefix"]
        if prefix not in indices and prefix not in tied:
            raise KeyError(f"{WHAT}: {name!r} has no token indices (known: {sorted(indices)}, tied: {sorted(tied)})")
        (deltas if "trainable_tokens_delta" in name else bases)[prefix] = tensor
        for ready in [p for p in bases if tied.get(p, p) in deltas]:
            source = tied.get(ready, ready)
            yield f"{ready}.weight", _fold(bases.pop(ready), deltas[source], indices[source])
    if bases:
        raise RuntimeError(f"{WHAT}: no trained rows reached the weight stream for {sorted(bases)}")


def _fold(base: Any, delta: Any, index: Any) -> Any:
    import torch

    rows = torch.as_tensor(list(index), dtype=torch.long, device=base.device)
    out = base.detach().clone()
    out[rows] = delta.detach().to(device=out.device, dtype=out.dtype)
    return out


def _prefix(module_name: str) -> str:
    """``base_model.model.model.embed_tokens.token_adapter`` -> ``model.embed_tokens`` (verl's sync names)."""
    return module_name.removesuffix(".token_adapter").replace("base_model.model.", "", 1)


def token_indices(peft_model: Any) -> tuple[dict[str, list[int]], dict[str, str]]:
    """``({prefix: token ids}, {tied prefix: its source prefix})`` of a peft model's trainable-token layers."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    layers = {name: m for name, m in peft_model.named_modules() if isinstance(m, TrainableTokensLayer)}
    indices, tied = {}, {}
    for name, layer in layers.items():
        if layer.tied_adapter is None:
            indices[_prefix(name)] = list(layer.token_indices.get("default", ()))
        else:
            tied[_prefix(name)] = next(_prefix(n) for n, m in layers.items() if m is layer.tied_adapter)
    return indices, tied


def register_tied_rows_once(peft_model: Any) -> None:
    """A tied head's row layer keeps using its source's delta, but no longer registers it as its own.

    peft 0.18.1 keeps the tied copy out of ``named_modules`` on purpose ("not included in the state
    dict since it would be a copy", ``peft/tuners/trainable_tokens/layer.py:51``), yet assigns the
    source's ``ParameterDict`` as an attribute, which registers it again under ``lm_head``. verl's
    FSDP2 load (``verl/utils/fsdp_utils.py:513``, ``set_model_state_dict``) then meets that alias as a
    second key, which torch skips when sharding and fails to copy ("mixed torch.Tensor and DTensor").
    """
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    tied = [m for m in peft_model.modules() if isinstance(m, TrainableTokensLayer) and m.tied_adapter is not None]
    for layer in tied:
        for attr in ("trainable_tokens_delta", "trainable_tokens_original"):
            shared = layer._modules.pop(attr, None)
            if shared is not None:
                object.__setattr__(layer, attr, shared)  # plain attribute: same object, not a submodule


@contextlib.contextmanager
def _lora_config_with_rows(transformer_impl: types.ModuleType, ids: list[int]) -> Iterator[None]:
    """``transformer_impl.LoraConfig`` adds ``trainable_token_indices`` while verl builds the model."""
    original = transformer_impl.LoraConfig

    def lora_config(**kwargs: Any) -> Any:
        kwargs.setdefault("trainable_token_indices", {EMBEDDING: list(ids)})
        return original(**kwargs)

    transformer_impl.LoraConfig = lora_config
    try:
        yield
    finally:
        transformer_impl.LoraConfig = original


def _wrap_build_lora_module(transformer_impl: types.ModuleType) -> None:
    engine = transformer_impl.FSDPEngine
    original = engine._build_lora_module
    if getattr(original, "_extra_cot_patched", False):
        return
    require_signature(original, ("self", "module"), WHAT)

    @functools.wraps(original)
    def _build_lora_module(self, module):
        config = self.model_config
        lora_options = getattr(config, "lora", None) or {}
        ids = control_token_ids(getattr(config, "tokenizer", None)) if rows_enabled(lora_options) else []
        if not ids or getattr(config, "lora_adapter_path", None):  # a saved adapter brings its own config
            return original(self, module)
        if not lora_options.get("merge", False):
            raise ValueError(
                f"{WHAT}: the control-token rows are trained by peft's trainable_token_indices, which "
                "vLLM's LoRA runtime cannot serve: set actor_rollout_ref.model.lora.merge=true (verl then "
                f"syncs merged weights), or +actor_rollout_ref.model.lora.{OPTION}=false to keep the rows frozen"
            )
        if not getattr(module.config, "tie_word_embeddings", False):
            # verl's FSDP2 shards an untied nn.Embedding as its own unit (verl/utils/fsdp_utils.py:566),
            # while peft's row layer reads that weight outside the unit's forward: not run, so refused.
            raise ValueError(
                f"{WHAT}: trainable control rows are tested with tied embeddings only (Qwen3-0.6B/1.7B/4B); "
                f"this model unties them. Set +actor_rollout_ref.model.lora.{OPTION}=false to keep the rows frozen"
            )
        with _lora_config_with_rows(transformer_impl, ids):
            peft_model = original(self, module)
        register_tied_rows_once(peft_model)
        logger.info("extra_cot: LoRA with trainable control-token rows %s (pid %d)", ids, os.getpid())
        return peft_model

    _build_lora_module._extra_cot_patched = True
    engine._build_lora_module = _build_lora_module


def _wrap_merged_sync(transformer_impl: types.ModuleType) -> None:
    engine = transformer_impl.FSDPEngine
    original = engine._merged_lora_per_tensor_param
    if getattr(original, "_extra_cot_patched", False):
        return
    require_signature(original, ("self",), WHAT)

    @functools.wraps(original)
    def _merged_lora_per_tensor_param(self):
        peft_model = getattr(self.module, "_fsdp_wrapped_module", self.module)
        indices, tied = token_indices(peft_model)
        stream = original(self)
        return fold_token_rows(stream, indices, tied) if indices else stream

    _merged_lora_per_tensor_param._extra_cot_patched = True
    engine._merged_lora_per_tensor_param = _merged_lora_per_tensor_param


def patch_fsdp_engine(transformer_impl: types.ModuleType) -> None:
    """Wrap verl's FSDP engine (idempotent); refuses on an untested verl/peft or a changed signature."""
    for dist, versions in TESTED.items():
        require_version(dist, versions, WHAT)
    import peft

    if getattr(transformer_impl, "LoraConfig", None) is not peft.LoraConfig:
        raise UntestedHostError(f"{WHAT}: {FSDP_ENGINE}.LoraConfig is not peft.LoraConfig (verl changed how it "
                                "builds the LoRA config); use verl 0.9.1")
    _wrap_build_lora_module(transformer_impl)
    _wrap_merged_sync(transformer_impl)


def install() -> None:
    """Patch the FSDP engine when (if) it is imported: actor and ref workers import it, the driver not."""
    from extra_cot._autoload import when_imported

    when_imported(FSDP_ENGINE, patch_fsdp_engine)


install()
