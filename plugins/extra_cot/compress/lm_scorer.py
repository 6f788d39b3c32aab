"""``lm`` scorer: question-aligned importance from a small causal LM (LongLLMLingua's idea).

For each CoT token x_i two surprisals are computed (the two inputs of a window go through the model
together, and ``score_batch`` pads the windows of many CoTs into one forward pass):
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

    def _plan(self, question: str, cot: str) -> tuple[list, list[tuple[list[int], int]]]:
        """CoT token offsets and the model inputs ``(ids, prefix length)`` that score them: per window,
        the one with the question prefix, then the one without."""
        enc = self.tokenizer(cot, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        pre_q, pre_0 = self._ids(PREFIX_Q.format(question=question)), self._ids(PREFIX_0)
        # Keep at least half the window for the CoT; a very long question is cut from the left.
        pre_q = pre_q[-(self.options.max_length // 2):]
        window = self.options.max_length - len(pre_q)
        seqs = []
        for start in range(0, len(ids), window):
            block = ids[start:start + window]
            seqs += [(pre_q + block, len(pre_q)), (pre_0 + block, len(pre_0))]
        return offsets, seqs

    def surprisals(self, question: str, cot: str):
        """``(offsets, s_q, s_0)`` for every CoT token (tensors of equal length)."""
        return self._surprisals_batch([(question, cot)])[0]

    def _surprisals_batch(self, pairs: Sequence[tuple[str, str]]) -> list:
        """:meth:`surprisals` of many ``(question, cot)``: every window of every CoT goes into padded
        forward passes of at most ``options.batch_size`` sequences (longest first, to pad little)."""
        import torch

        plans = [self._plan(q, c) for q, c in pairs]
        flat = [seq for _, seqs in plans for seq in seqs]
        values = self._forward_surprisals(flat)
        out, at = [], 0
        for offsets, seqs in plans:
            mine, at = values[at:at + len(seqs)], at + len(seqs)
            if not mine:
                empty = torch.zeros(0)
                out.append((offsets, empty, empty))
            else:
                out.append((offsets, torch.cat(mine[0::2]), torch.cat(mine[1::2])))
        return out

    def _forward_surprisals(self, seqs: list[tuple[list[int], int]]) -> list:
        """``-log p(token)`` of each sequence's tokens after its prefix, in the order given."""
        import torch

        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
        out: list = [None] * len(seqs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        size = max(1, self.options.batch_size)
        for chunk in (order[i:i + size] for i in range(0, len(order), size)):
            width = len(seqs[chunk[0]][0])
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, i in enumerate(chunk):  # right padding: a causal LM's real tokens never see the pads
                input_ids[r, : len(seqs[i][0])] = torch.tensor(seqs[i][0])
                mask[r, : len(seqs[i][0])] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids.to(self.options.device),
                                    attention_mask=mask.to(self.options.device)).logits.float().cpu()
            logp = torch.log_softmax(logits, dim=-1)
            for r, i in enumerate(chunk):
                seq, p = seqs[i]
                # token t is predicted by position t-1; the prefix is never empty.
                out[i] = -logp[r, p - 1 : len(seq) - 1].gather(1, torch.tensor(seq[p:])[:, None])[:, 0]
        return out

    def score_batch(self, items: Sequence[tuple[str, str, Sequence[Unit]]]) -> list[list[float]]:
        surprisals = self._surprisals_batch([(q, c) for q, c, _ in items])
        scores = []
        for (_, _, units), (offsets, s_q, s_0) in zip(items, surprisals, strict=True):
            if len(offsets) == 0:
                scores.append([0.0] * len(units))
            else:
                scores.append(aggregate(offsets, token_scores(s_q, s_0, self.options.contrast_weight).tolist(), units))
        return scores
