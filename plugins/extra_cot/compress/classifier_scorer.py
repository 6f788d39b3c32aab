"""``classifier`` scorer: the paper's student, a token classifier over
``<Q> {question} </Q> <SEP> {cot}`` (question tokens unlabelled, global attention on them where
the model supports it, e.g. Longformer). score_i = keep logit − drop logit of CoT token i.

Any local HF token-classification directory with two labels works (``extra-cot
train-compressor`` writes one; LLMLingua-2 checkpoints have the same shape). The encoding below
is shared with training so inputs match exactly.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from extra_cot.compress.scorer_base import ModelScorer, ScorerOptions, aggregate
from extra_cot.compress.segment import Unit

PREFIX = "<Q> {question} </Q> <SEP> "
KEEP, DROP = 1, 0


@dataclass(frozen=True)
class Window:
    """One model input: ids, the global-attention mask, and which CoT tokens it holds."""

    input_ids: list[int]
    global_mask: list[int]
    cot_positions: list[int]  # position in input_ids of each CoT token of this window
    cot_tokens: range  # indices into the CoT's token list


def encode(tokenizer, question: str, cot: str, max_length: int) -> tuple[list[tuple[int, int]], list[Window]]:
    """CoT token offsets and the windows covering them (each repeats the question prefix)."""
    prefix = tokenizer(PREFIX.format(question=question), add_special_tokens=False)["input_ids"]
    prefix = prefix[: max_length // 2]  # keep at least half the window for the CoT
    enc = tokenizer(cot, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    n_special = len(tokenizer.build_inputs_with_special_tokens([])) if hasattr(tokenizer, "build_inputs_with_special_tokens") else 0
    width = max(1, max_length - len(prefix) - n_special)
    windows = []
    for start in range(0, max(1, len(ids)), width):
        block = ids[start:start + width]
        body = prefix + block
        full = tokenizer.build_inputs_with_special_tokens(body) if n_special else body
        lead = _lead(full, body)
        cot_pos = list(range(lead + len(prefix), lead + len(prefix) + len(block)))
        gmask = [1 if lead <= p < lead + len(prefix) else 0 for p in range(len(full))]
        windows.append(Window(full, gmask, cot_pos, range(start, start + len(block))))
    return offsets, windows


def _lead(full: list[int], body: list[int]) -> int:
    """Number of special tokens the tokenizer puts before ``body``."""
    for k in range(len(full) - len(body) + 1):
        if full[k:k + len(body)] == body:
            return k
    raise ValueError("tokenizer.build_inputs_with_special_tokens reorders tokens; unsupported tokenizer")


def accepts_global_attention(model) -> bool:
    return "global_attention_mask" in inspect.signature(model.forward).parameters


def keep_label(config) -> int:
    """Index of the keep label: ``label2id['keep']`` when named, else 1."""
    label2id = {str(k).lower(): v for k, v in (getattr(config, "label2id", None) or {}).items()}
    return int(label2id.get("keep", KEEP))


@dataclass
class ClassifierScorer(ModelScorer):
    name: str = "classifier"
    AUTO_CLASS: ClassVar[str] = "AutoModelForTokenClassification"

    @classmethod
    def load(cls, options: ScorerOptions) -> ClassifierScorer:
        if options.model is None:
            raise ValueError("the classifier scorer needs --scorer-model DIR (a token-classification model, "
                             "e.g. one written by `extra-cot train-compressor`)")
        return super().load(options)

    def token_scores(self, question: str, cot: str) -> tuple[list[tuple[int, int]], list[float]]:
        import torch

        limit = min(self.options.max_length, getattr(self.model.config, "max_position_embeddings", 10**9) - 2)
        offsets, windows = encode(self.tokenizer, question, cot, limit)
        keep = keep_label(self.model.config)
        scores = [0.0] * len(offsets)
        use_global = accepts_global_attention(self.model)
        for w in windows:
            kwargs = {"input_ids": torch.tensor([w.input_ids], device=self.options.device)}
            if use_global:
                kwargs["global_attention_mask"] = torch.tensor([w.global_mask], device=self.options.device)
            with torch.inference_mode():
                logits = self.model(**kwargs).logits[0].float().cpu()
            drop = logits[:, 1 - keep] if logits.shape[-1] == 2 else logits.max(-1).values
            margin = logits[:, keep] - drop
            for tok, pos in zip(w.cot_tokens, w.cot_positions):
                scores[tok] = float(margin[pos])
        return offsets, scores

    def score(self, question: str, cot: str, units: Sequence[Unit]) -> list[float]:
        offsets, scores = self.token_scores(question, cot)
        return aggregate(offsets, scores, units) if scores else [0.0] * len(units)
