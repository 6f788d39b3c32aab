"""``lm`` scorer: question-aligned importance from a small causal LM (LongLLMLingua's idea).

For each CoT token x_i two surprisals are computed in ONE batched forward pass pair:
``s_q = -log p(x_i | question, x_<i)`` and ``s_0 = -log p(x_i | x_<i)``. ``s_q`` is
informativeness (LLMLingua keeps high-surprisal tokens); ``s_0 - s_q`` is the contrast
(LongLLMLingua: how much the question makes the token predictable = question relevance).
token score = z(s_q) + contrast_weight · z(s_0 − s_q), z = standardised within the CoT; a unit's
score is the mean of its tokens. CoTs longer than the window are scored in windows that each
repeat the prefix (cross-window context is dropped: a documented approximation).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from extra_cot.compress.scorer_base import ModelScorer, aggregate
from extra_cot.compress.segment import Unit

logger = logging.getLogger(__name__)

#: Plain framing (no chat template: the scorer is any causal LM, base or instruct).
PREFIX_Q = "Question: {question}\nStep-by-step solution:\n"
PREFIX_0 = "Step-by-step solution:\n"


def _standardize(values):
    std = values.std(unbiased=False) if values.numel() > 1 else values.new_tensor(0.0)
    return (values - values.mean()) / (std + 1e-6)


def token_scores(s_q, s_0, contrast_weight: float):
    """Per-token importance ``z(s_q) + contrast_weight · z(s_0 − s_q)`` (tensors in, tensor out).

    ``s_0 − s_q > 0``: the question made the token more predictable, so it is question-relevant
    and scores higher (LongLLMLingua's contrastive perplexity). The direction is pinned by
    ``tests/compress/test_compress_scorers.py``.
    """
    return _standardize(s_q) + contrast_weight * _standardize(s_0 - s_q)


@dataclass
class LMScorer(ModelScorer):
    name: str = "lm"
    AUTO_CLASS: ClassVar[str] = "AutoModelForCausalLM"

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def surprisals(self, question: str, cot: str):
        """``(offsets, s_q, s_0)`` for every CoT token (tensors of equal length)."""
        import torch

        enc = self.tokenizer(cot, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        pre_q, pre_0 = self._ids(PREFIX_Q.format(question=question)), self._ids(PREFIX_0)
        # Keep at least half the window for the CoT; a very long question is cut from the left.
        half = self.options.max_length // 2
        pre_q = pre_q[-half:]
        window = self.options.max_length - len(pre_q)
        s_q, s_0 = [], []
        for start in range(0, len(ids), window):
            block = ids[start:start + window]
            a, b = self._block_surprisal([pre_q + block, pre_0 + block], [len(pre_q), len(pre_0)])
            s_q.append(a)
            s_0.append(b)
        if not ids:
            empty = torch.zeros(0)
            return offsets, empty, empty
        return offsets, torch.cat(s_q), torch.cat(s_0)

    def _block_surprisal(self, seqs: list[list[int]], prefix_lens: list[int]):
        import torch

        width = max(map(len, seqs))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, seq in enumerate(seqs):
            input_ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids.to(self.options.device),
                                attention_mask=mask.to(self.options.device)).logits.float().cpu()
        logp = torch.log_softmax(logits, dim=-1)
        out = []
        for r, (seq, p) in enumerate(zip(seqs, prefix_lens)):
            targets = torch.tensor(seq[p:])
            # token t is predicted by position t-1; the prefix is never empty.
            out.append(-logp[r, p - 1 : len(seq) - 1].gather(1, targets[:, None])[:, 0])
        return out

    def score(self, question: str, cot: str, units: Sequence[Unit]) -> list[float]:
        offsets, s_q, s_0 = self.surprisals(question, cot)
        if len(offsets) == 0:
            return [0.0] * len(units)
        return aggregate(offsets, token_scores(s_q, s_0, self.options.contrast_weight).tolist(), units)
