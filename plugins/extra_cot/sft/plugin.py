"""Registration of everything Stage 2 adds to LLaMA-Factory (idempotent).

Called automatically right after ``llamafactory.data`` is imported in any interpreter
(:mod:`extra_cot._autoload`); call it yourself when that hook is switched off.

| host registry / hook | name | module |
|---|---|---|
| ``llamafactory.data.template.register_template`` | ``qwen3_comp`` | ``extra_cot.sft.template`` |
| ``llamafactory.data.converter.register_dataset_converter`` | ``extra_cot`` | ``extra_cot.sft.processor`` |
| wraps ``llamafactory.data.loader._get_dataset_processor`` | (1 row -> N examples) | ``extra_cot.sft.processor`` |
"""

from __future__ import annotations

import logging
import os
from importlib import metadata

# A child of LLaMA-Factory's library logger, so our lines appear (with rank prefixes, at the
# host's verbosity) in the same stream as the host's own log; plain "extra_cot" has no handler.
logger = logging.getLogger("llamafactory.extra_cot")
#: The LLaMA-Factory release this adapter was written and tested against (pyproject pins it).
SUPPORTED_LLAMAFACTORY = ("0.9.5",)
_done = False


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


def register() -> bool:
    """Register template, converter and processor once per process; True if this call did it."""
    global _done
    if _done:
        return False
    version = check_version()
    from extra_cot.sft import processor, template

    added = [template.register_template(), processor.install_processor(), processor.install_converter()]
    _done = True
    logger.info("extra-cot Stage 2 plugin active for LLaMA-Factory %s (rank %s, pid %d, new registrations: %s)",
                version, os.environ.get("RANK", "-"), os.getpid(), added)
    return True
