"""``extra-cot train-compressor``: fine-tune a token classifier (the paper's student) on the
teacher's keep-spans written by ``extra-cot label``.

Examples::

    extra-cot train-compressor --labels out/labels.jsonl --model /models/longformer-large-4096 \\
        --output-dir out/compressor --epochs 1 --lr 2e-5
    extra-cot compress --input traces.jsonl --output c.jsonl --scorer classifier --scorer-model out/compressor

Input ``<Q> question </Q> <SEP> cot`` (``classifier_scorer.encode``, shared with inference);
question tokens get label -100 (not trained), CoT tokens 1 if inside a keep-span else 0; the
question gets global attention where the model supports it (Longformer). A plain torch loop
(AdamW, linear decay), one window per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from extra_cot.compress.classifier_scorer import KEEP, accepts_global_attention, encode
from extra_cot.compress.jsonl import run_command
from extra_cot.fileio import atomic_write_json, read_jsonl

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """Student fine-tuning options; lr/epochs default to LLMLingua-2's recipe (lr 1e-5, ~10
    epochs on 40k labelled chunks) scaled to one pass here, [R]. ``max_length`` 4096: the
    paper's Longformer context."""

    model: str
    output_dir: str
    lr: float = 2e-5
    epochs: int = 1
    max_steps: int | None = None
    max_length: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("need lr > 0, epochs >= 1, max_steps >= 1 (or unset)")


def token_labels(offsets, keep_spans) -> list[int]:
    """1 for a CoT token whose middle character lies in a keep-span, else 0."""
    labels = []
    for s, e in offsets:
        mid = (s + e - 1) / 2 if e > s else s
        labels.append(int(any(a <= mid < b for a, b in keep_spans)))
    return labels


def examples(tokenizer, rows, max_length: int):
    """``(input_ids, global_mask, labels)`` per window of every labelled row."""
    for row in rows:
        offsets, windows = encode(tokenizer, row["question"], row["cot"], max_length)
        tok_labels = token_labels(offsets, row["keep_spans"])
        for w in windows:
            labels = [-100] * len(w.input_ids)
            for tok, pos in zip(w.cot_tokens, w.cot_positions):
                labels[pos] = tok_labels[tok]
            yield w.input_ids, w.global_mask, labels


def train(rows: list[dict], options: TrainOptions) -> Path:
    """Fine-tune and save model + tokenizer + options to ``options.output_dir``."""
    import torch
    from transformers import AutoModelForTokenClassification

    from extra_cot import hub
    from extra_cot.compress.models import _spec, load_tokenizer

    torch.manual_seed(options.seed)
    model = hub.from_pretrained(
        AutoModelForTokenClassification, _spec(options.model),
        num_labels=2, id2label={0: "drop", KEEP: "keep"}, label2id={"drop": 0, "keep": KEEP})
    tokenizer = load_tokenizer(options.model)
    limit = min(options.max_length, getattr(model.config, "max_position_embeddings", 10**9) - 2)
    data = list(examples(tokenizer, rows, limit))
    if not data:
        raise ValueError("no labelled windows to train on (are the label rows empty?)")
    steps = options.max_steps or options.epochs * len(data)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, 1 - k / steps))
    use_global = accepts_global_attention(model)
    rng = random.Random(options.seed)
    model.train()
    for step in range(steps):
        if step % len(data) == 0:
            rng.shuffle(data)
        ids, gmask, labels = data[step % len(data)]
        kw = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])}
        if use_global:
            kw["global_attention_mask"] = torch.tensor([gmask])
        loss = model(**kw).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            logger.info("step %d/%d loss %.4f", step + 1, steps, loss.item())
    out = Path(options.output_dir)
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "train_compressor.json", dataclasses.asdict(options) | {"rows": len(rows), "windows": len(data)})
    return out


def build_tiny_classifier(out_dir: str | Path, tokenizer_dir: str | Path) -> Path:
    """A tiny random Longformer token classifier over a local tokenizer (tests, benchmarks)."""
    from transformers import AutoTokenizer, LongformerConfig, LongformerForTokenClassification

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LongformerConfig(
        vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        attention_window=[32, 32], max_position_embeddings=1024 + 2 + (tok.pad_token_id or 0),
        pad_token_id=tok.pad_token_id or 0, bos_token_id=None, eos_token_id=None, num_labels=2,
        id2label={0: "drop", 1: "keep"}, label2id={"drop": 0, "keep": 1})
    out = Path(out_dir)
    LongformerForTokenClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extra-cot train-compressor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", required=True, help="JSONL from `extra-cot label` ({question, cot, keep_spans})")
    p.add_argument("--model", required=True, help="encoder to fine-tune (e.g. Longformer): folder or hub id ORG/NAME[@REV]")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> Path:
    """Read the labels (``file:line`` errors) and train; the saved folder."""
    options = TrainOptions(args.model, args.output_dir, args.lr, args.epochs, args.max_steps, args.max_length, args.seed)
    rows = []
    for n, row in read_jsonl(args.labels):
        for name in ("question", "cot", "keep_spans"):
            if name not in row:
                raise ValueError(f"{args.labels}:{n}: field {name!r} is missing")
        rows.append(row)
    return train(rows, options)


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), run, argv, lambda out: print(f"saved token classifier to {out}"))
