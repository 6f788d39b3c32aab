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

    def _token_scores_batch(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[list, list[float]]]:
        """Keep-minus-drop margin of every CoT token of many ``(question, cot)``: all windows go through
        right-padded forward passes of at most ``options.batch_size`` windows, pads masked out."""
        import torch

        limit = min(self.options.max_length, getattr(self.model.config, "max_position_embeddings", 10**9) - 2)
        encoded = [encode(self.tokenizer, q, c, limit) for q, c in pairs]
        flat = [w for _, windows in encoded for w in windows]
        keep = keep_label(self.model.config)
        use_global = accepts_global_attention(self.model)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        margins: list = [None] * len(flat)
        order = sorted(range(len(flat)), key=lambda i: -len(flat[i].input_ids))
        size = max(1, self.options.batch_size)
        for chunk in (order[i:i + size] for i in range(0, len(order), size)):
            width = len(flat[chunk[0]].input_ids)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask, gmask = torch.zeros_like(ids), torch.zeros_like(ids)
            for r, i in enumerate(chunk):
                n = len(flat[i].input_ids)
                ids[r, :n], mask[r, :n], gmask[r, :n] = (torch.tensor(flat[i].input_ids), 1,
                                                         torch.tensor(flat[i].global_mask))
            kwargs = {"input_ids": ids.to(self.options.device), "attention_mask": mask.to(self.options.device)}
            if use_global:
                kwargs["global_attention_mask"] = gmask.to(self.options.device)
            with torch.inference_mode():
                logits = self.model(**kwargs).logits.float().cpu()
            for r, i in enumerate(chunk):
                drop = logits[r, :, 1 - keep] if logits.shape[-1] == 2 else logits[r].max(-1).values
                margins[i] = logits[r, :, keep] - drop
        out, at = [], 0
        for offsets, windows in encoded:
            scores = [0.0] * len(offsets)
            for w, margin in zip(windows, margins[at:at + len(windows)], strict=True):
                for tok, pos in zip(w.cot_tokens, w.cot_positions):
                    scores[tok] = float(margin[pos])
            out.append((offsets, scores))
            at += len(windows)
        return out

    def score_batch(self, items: Sequence[tuple[str, str, Sequence[Unit]]]) -> list[list[float]]:
        scored = self._token_scores_batch([(q, c) for q, c, _ in items])
        return [aggregate(offsets, scores, units) if scores else [0.0] * len(units)
                for (_, _, units), (offsets, scores) in zip(items, scored, strict=True)]
