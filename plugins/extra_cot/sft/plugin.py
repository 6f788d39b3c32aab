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

# A child of LLaMA-Factory's library logger, so our lines appear (with rank prefixes, at the
# host's verbosity) in the same stream as the host's own log; plain "extra_cot" has no handler.
logger = logging.getLogger("llamafactory.extra_cot")
#: The LLaMA-Factory release this adapter was written and tested against (pyproject pins it).
SUPPORTED_LLAMAFACTORY = ("0.9.5",)
_done: set[str] = set()


def check_version() -> str | None:
    """Warn (once per call) when the installed LLaMA-Factory is not a supported release."""
    try:
        version = metadata.version("llamafactory")
    except metadata.PackageNotFoundError:
        return None
    if version not in SUPPORTED_LLAMAFACTORY:
        logger.warning(
            "extra-cot supports LLaMA-Factory %s; found %s: the qwen3_comp template and the extra_cot "
            "formatting hook private loader code and may fail (pip install 'llamafactory==%s')",
            "/".join(SUPPORTED_LLAMAFACTORY), version, SUPPORTED_LLAMAFACTORY[0],
        )
    return version


def register(part: str | None = None) -> bool:
    """Register once per process; True if this call registered something.

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
    version = check_version() if not _done else None
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
