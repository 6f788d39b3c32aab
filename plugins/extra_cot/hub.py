"""Model and tokenizer names: a local folder, a ``.gguf`` file, or a hub id ``ORG/NAME[@REVISION]``.

One resolver for every command that names a model or tokenizer (compress ``--tokenizer`` /
``--scorer-model``, label, train-compressor, prepare-model ``--src``, eval ``--tokenizer``, the
RL reward's tokenizer). A hub id is handed to transformers' own ``from_pretrained``, so the
Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``), ``HF_HUB_OFFLINE=1`` and the revision
behave exactly as in the hosts (LLaMA-Factory, verl, vLLM take the same ids). A name that can
only be a path (absolute, ``./``, ``~``) and does not exist fails at once, naming the fix.
Imports transformers only inside :func:`from_pretrained`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

#: A hub repository id as the Hub spells it: ``NAME`` or ``ORG/NAME`` (letters, digits, ``-_.``).
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve(spec: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(name_or_path, from_pretrained kwargs)`` for a local folder, a ``.gguf`` file or a hub id.

    ``ORG/NAME@REVISION`` pins a branch, tag or commit (``revision=``). Raises
    :class:`FileNotFoundError` for a name that is neither an existing path nor a hub id.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), {"gguf_file": path.name}
    if path.is_dir():
        return str(path), {}
    name, _, revision = text.partition("@")
    if not _HUB_ID_RE.match(name) or name.startswith(".") or (revision == "" and "@" in text):
        raise FileNotFoundError(
            f"model {text!r}: no local folder or .gguf file there, and not a hub id ORG/NAME[@REVISION]; "
            "pass an existing folder or a hub id such as Qwen/Qwen3-1.7B"
        )
    return name, ({"revision": revision} if revision else {})


def from_pretrained(auto_class: Any, spec: str | os.PathLike, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` for ``spec`` (see :func:`resolve`); a hub id that cannot be
    loaded (not cached while offline, unknown id, no network) raises naming the cache and the fix."""
    name, resolved = resolve(spec)
    try:
        return auto_class.from_pretrained(name, **resolved, **kwargs)
    except OSError as err:
        if Path(name).exists():
            raise
        from huggingface_hub import constants

        offline = "on" if constants.HF_HUB_OFFLINE else "off"
        raise OSError(
            f"model {str(spec)!r} is not a local folder, and as a hub id it could not be loaded "
            f"(HF_HUB_OFFLINE {offline}, cache {constants.HF_HUB_CACHE}): {err}. Fix: pass a local folder, "
            f"or fetch it once where the hub is reachable (`hf download {name}`) into that cache"
        ) from err
