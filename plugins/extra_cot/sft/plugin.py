"""Registration of everything Stage 2 adds to LLaMA-Factory (idempotent).

Called automatically right after ``llamafactory.data`` is imported in any interpreter
(:mod:`extra_cot._autoload`); call it yourself when that hook is switched off.

| host registry / hook | name | module |
|---|---|---|
| ``llamafactory.data.template.register_template`` | ``qwen3_comp`` | ``extra_cot.sft.template`` |
| ``llamafactory.data.converter.register_dataset_converter`` | ``extra_cot`` | ``extra_cot.sft.processor`` |
| wraps ``llamafactory.data.loader._get_dataset_processor`` | (1 row -> N examples) | ``extra_cot.sft.processor`` |
| wraps ``llamafactory.model.loader.patch_tokenizer`` and ``llamafactory.model.patcher.resize_embedding_layer`` | (row init without resize) | ``extra_cot.sft.embedding`` |
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import metadata

from extra_cot.hostcheck import SUPPORTED, require_version

# A child of LLaMA-Factory's library logger, so our lines appear (with rank prefixes, at the
# host's verbosity) in the same stream as the host's own log; plain "extra_cot" has no handler.
logger = logging.getLogger("llamafactory.extra_cot")
#: The LLaMA-Factory release this adapter was written and tested against (pyproject pins it).
SUPPORTED_LLAMAFACTORY = SUPPORTED["llamafactory"]
_done: set[str] = set()
_WHAT = "extra-cot's LLaMA-Factory adapter (template qwen3_comp, formatting extra_cot, embedding init)"


def check_version() -> str | None:
    """The installed LLaMA-Factory version; :class:`UntestedHostError` unless it is supported.

    The adapter wraps private loader code, so an untested release is refused (not patched
    anyway); ``EXTRA_COT_ALLOW_UNTESTED_HOST=1`` turns the refusal into a warning.
    """
    return require_version("llamafactory", SUPPORTED_LLAMAFACTORY, _WHAT)


def register(part: str | None = None) -> bool:
    """Register once per process; True if this call registered something.

    Refuses (:class:`extra_cot.hostcheck.UntestedHostError`) on an untested LLaMA-Factory
    release or a changed private signature before patching anything.

    ``part``: ``"data"`` (template, converter, processor; needs ``llamafactory.data``),
    ``"model"`` (embedding-row init; needs ``llamafactory.model``) or ``None`` for the data
    part plus the model part when ``llamafactory.model`` is already imported. The autoload
    hook calls each part right after its module is imported, so a data-only process never
    imports the model stack.
    """
    parts = [part] if part else ["data"] + (["model"] if "llamafactory.model" in sys.modules else [])
    todo = [p for p in parts if p not in _done]
    if not todo:
        return False
    unknown = set(todo) - set(_PARTS)
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)}; valid: {sorted(_PARTS)}")
    version = check_version()  # before touching the host, on every registering call
    for name in todo:
        added = _PARTS[name]()
        _done.add(name)
        logger.info("extra-cot Stage 2 plugin active for LLaMA-Factory %s: %s (rank %s, pid %d, new: %s)",
                    version or metadata.version("llamafactory"), name, os.environ.get("RANK", "-"), os.getpid(), added)
    return True


def _register_data() -> list[bool]:
    from extra_cot.sft import processor, template

    return [template.register_template(), processor.install_processor(), processor.install_converter()]


def _register_model() -> list[bool]:
    from extra_cot.sft import embedding

    return [embedding.install()]


_PARTS = {"data": _register_data, "model": _register_model}
