"""Add the control tokens to a model and initialise their embedding rows (``extra-cot prepare-model``).

Why a separate step: Qwen3's embedding has spare rows beyond its tokenizer (151936 rows for
~151669 tokens), so LLaMA-Factory 0.9.5's ``add_special_tokens`` gives the new tokens ids
inside the existing matrix, does not resize, and never initialises those rows (docs/hosts.md):
they keep whatever the spare rows held. Here every *new* token's input row (and the lm_head
row when not tied) is set explicitly, whether or not the matrix had to grow.

Examples::

    extra-cot prepare-model --src Qwen/Qwen3-1.7B --out models/qwen3-1.7b-comp
    extra-cot prepare-model --src models/smollm2 --out models/smollm2-comp --init desc

Initialisations (``--init``; default ``distinct``):

- ``distinct``: each token's own point: the mean row of its description (which names its
  ratio, e.g. "20 percent") plus seeded Gaussian noise with the per-dimension spread of the
  existing rows, rescaled to the median norm of the existing rows. Every token starts apart from
  the others (tied models, e.g. SmolLM2 and Qwen3 <= 4B, share the input and output row, so the
  output side is apart too) with an ordinary row's norm. Seeded by the token text: reproducible.
- ``desc``: the mean row of the description only (LLaMA-Factory's ``desc_init``); the
  descriptions differ in one word, so the rows are nearly identical and shorter than real rows.
- ``mean``: the mean of all existing rows (``noise_init`` without noise): all tokens identical.
  Kept for comparison; a model cannot tell the tokens apart at step 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from extra_cot.chat_template import with_comp_ratio
from extra_cot.fileio import atomic_output, atomic_write_json
from extra_cot.tokens import CONTROL_TOKENS, token_to_ratio

logger = logging.getLogger(__name__)
THINK_TOKENS = ("<think>", "</think>")
MARKER = "extra_cot_prepare.json"


@dataclass
class PrepareConfig:
    """Options of :func:`prepare_model`.

    init: ``"distinct"`` (default) = description mean + seeded noise at the existing rows'
        spread, rescaled to their median norm (each token its own row); ``"desc"`` = mean of the
        rows of a short description of each token (like LLaMA-Factory's ``desc_init``);
        ``"mean"`` = mean of the existing rows (all tokens identical). See the module doc.
    tokens: the special tokens to add (default: the six control tokens).
    dtype: torch dtype name to load/save in (``"auto"`` keeps the checkpoint's).
    """

    init: str = "distinct"
    tokens: tuple[str, ...] = CONTROL_TOKENS
    dtype: str = "auto"
    new_ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.init not in _INITS:
            raise ValueError(f"init={self.init!r} is unknown; valid: {sorted(_INITS)}")


#: Descriptions of the think markers, added when a model lacks them (e.g. SmolLM2).
_THINK_DESCRIPTIONS = {"<think>": "start of the step by step reasoning", "</think>": "end of the reasoning, now the answer"}


def describe(token: str) -> str:
    """A description of a control token (or a think marker) for ``init="desc"``."""
    if token in _THINK_DESCRIPTIONS:
        return _THINK_DESCRIPTIONS[token]
    ratio = token_to_ratio(token)
    if ratio is None:
        return "choose how much to compress the reasoning"
    return f"reason briefly with {round(ratio * 100)} percent of the usual length"


def _mean_rows(weight, n_old: int, tokenizer, token: str):
    return weight[:n_old].float().mean(dim=0)


def _desc_rows(weight, n_old: int, tokenizer, token: str):
    ids = [i for i in tokenizer.encode(describe(token), add_special_tokens=False) if i < n_old]
    if not ids:
        return _mean_rows(weight, n_old, tokenizer, token)
    return weight[ids].float().mean(dim=0)


def _distinct_rows(weight, n_old: int, tokenizer, token: str):
    """Description mean + noise seeded by the token, at the existing rows' median norm."""
    import torch

    old = weight[:n_old].float()
    gen = torch.Generator().manual_seed(zlib.crc32(token.encode("utf-8")))
    noise = torch.randn(old.shape[1], generator=gen) * old.std(dim=0)
    row = _desc_rows(weight, n_old, tokenizer, token) + noise
    return row * (old.norm(dim=1).median() / row.norm().clamp_min(1e-12))


_INITS = {"distinct": _distinct_rows, "mean": _mean_rows, "desc": _desc_rows}
DEFAULT_INIT = "distinct"


def distinct_row(weight, n_old: int, tokenizer, token: str):
    """The default (``distinct``) starting row of ``token`` given the first ``n_old`` rows."""
    return _distinct_rows(weight, n_old, tokenizer, token)


def _add_tokens(tokenizer, tokens: tuple[str, ...]) -> list[str]:
    """Add the think markers (non-special, if absent) and the special tokens; return the new ones."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    think = [AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS if t not in vocab]
    if think:
        tokenizer.add_tokens(think)
    special = [t for t in tokens if t not in vocab]
    if special:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": [AddedToken(t, special=True, normalized=False) for t in special]},
            replace_extra_special_tokens=False,  # transformers 5 name (4.x: additional_special_tokens)
        )
    return [t.content for t in think] + special


def init_rows(model, tokenizer, new_tokens: list[str], n_old: int, init: str) -> dict[str, int]:
    """Initialise the input (and untied output) rows of ``new_tokens``; return token -> id."""
    import torch

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in new_tokens}
    needed = max(ids.values(), default=-1) + 1
    if needed > model.get_input_embeddings().weight.shape[0]:
        # pad to 64 rows like LLaMA-Factory's resize (docs/hosts.md / llamafactory embedding.py)
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, mean_resizing=False)
    weights = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and not model.config.tie_word_embeddings:
        weights.append(out.weight)
    with torch.no_grad():
        for weight in weights:
            for token, idx in ids.items():
                row = _INITS[init](weight, n_old, tokenizer, token)
                weight[idx] = row.to(weight.dtype)
    return ids


def prepare_model(src_dir: str | Path, out_dir: str | Path, *, init: str = DEFAULT_INIT,
                  tokens: tuple[str, ...] = CONTROL_TOKENS, dtype: str = "auto", overwrite: bool = False) -> Path:
    """Copy ``src_dir`` to ``out_dir`` with the control tokens added and their rows initialised.

    Tokens already in the tokenizer keep their rows (a prepared or trained model is left
    as it is). Written atomically; an existing ``out_dir`` with the same settings is reused.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from extra_cot import hub

    cfg = PrepareConfig(init=init, tokens=tuple(tokens), dtype=dtype)
    out = Path(out_dir)
    marker = out / MARKER
    if marker.exists() and not overwrite:
        done = json.loads(marker.read_text())
        if done.get("init") == cfg.init and tuple(done.get("tokens", ())) == cfg.tokens:
            logger.info("%s already prepared (%s); pass overwrite=True to redo", out, MARKER)
            return out
    tokenizer = hub.from_pretrained(AutoTokenizer, src_dir)
    model = hub.from_pretrained(AutoModelForCausalLM, src_dir, dtype=dtype)
    n_old = len(tokenizer)
    new_tokens = _add_tokens(tokenizer, cfg.tokens)
    if isinstance(tokenizer.chat_template, str):  # the served template takes comp_ratio (extra_cot.chat_template)
        tokenizer.chat_template = with_comp_ratio(tokenizer.chat_template)
    cfg.new_ids = init_rows(model, tokenizer, new_tokens, min(n_old, model.get_input_embeddings().weight.shape[0]), cfg.init)
    logger.info("added %d tokens to %s: %s", len(new_tokens), src_dir, cfg.new_ids)
    with atomic_output(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / MARKER, {**asdict(cfg), "src_dir": str(src_dir)})
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="extra-cot prepare-model",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  extra-cot prepare-model --src Qwen/Qwen3-1.7B --out models/qwen3-1.7b-comp\n"
        "  extra-cot prepare-model --src models/smollm2 --out models/smollm2-comp --init desc",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--src", required=True,
                   help="model folder or hub id ORG/NAME[@REV] (HF cache; offline once cached, HF_HUB_OFFLINE=1)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--init", default=DEFAULT_INIT, choices=sorted(_INITS),
                   help="row initialisation (default: distinct = description + seeded noise at an ordinary row's "
                   "norm, each token apart; desc: description mean only; mean: all rows identical)")
    p.add_argument("--dtype", default="auto", help="torch dtype to load/save in (default: the checkpoint's)")
    p.add_argument("--overwrite", action="store_true", help="redo even if --out is already prepared")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = prepare_model(args.src, args.out, init=args.init, dtype=args.dtype, overwrite=args.overwrite)
    print(f"prepared model: {out}")
    return 0
