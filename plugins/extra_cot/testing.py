"""Tiny, locally built Qwen3-style models for offline tests and the scaled-down demo.

No hub access is needed: a byte-level BPE tokenizer is trained on the spot with ``tokenizers``
on a small arithmetic corpus, with Qwen3's chat markers (``<|im_start|>``, ``<|im_end|>``,
``<think>``, ``</think>``) and a Qwen3-style chat template, and a randomly initialised
``Qwen3ForCausalLM`` (hidden 64, 2 layers, 4 heads of dim 32, 2 KV heads: head_dim ≥ 32 because
vLLM's CPU attention rejects 16, HOSTS.md) is saved beside it.

Like Qwen3, the embedding can be given spare rows beyond the tokenizer (``spare_rows``) so the
"new token rows are never initialised by LLaMA-Factory" case is reproduced.

Imports torch/transformers/tokenizers: never imported by ``import extra_cot``.
"""

from __future__ import annotations

import random
from pathlib import Path

from extra_cot.prompt import INSTRUCTION, SYSTEM_PROMPT
from extra_cot.tokens import CONTROL_TOKENS

#: Qwen3's chat layout (thinking mode): system/user/assistant turns between im markers.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
THINK_TOKENS = ("<think>", "</think>")


def _corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = (
        "the of and to a in is it that for on with as each has he she they how many much total "
        "first then so now left more less than per cost costs dollars apples books pages hours "
        "minutes days week answer therefore we need find step let us compute buys sells gives"
    ).split()
    lines = [SYSTEM_PROMPT, INSTRUCTION]
    for _ in range(n_lines):
        a, b = rng.randint(1, 999), rng.randint(1, 99)
        op = rng.choice(["+", "-", "*", "/", "×"])
        text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        lines.append(f"{text.capitalize()} {a} {op} {b} = {a + b}. <<{a}{op}{b}={a * b}>> \\boxed{{{a}}} $x^2$")
    return lines


def build_tokenizer(out_dir: str | Path, control_tokens: bool = True, vocab_size: int = 1024):
    """Train and save a byte-level BPE tokenizer with Qwen3 chat markers; return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    # Qwen3 keeps <think>/</think> as added, non-special tokens (they survive decoding).
    fast.add_tokens(list(THINK_TOKENS), special_tokens=False)
    if control_tokens:
        fast.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:]) + list(CONTROL_TOKENS)})
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_model(
    out_dir: str | Path,
    control_tokens: bool = True,
    spare_rows: int = 64,
    seed: int = 0,
) -> Path:
    """Write a tiny Qwen3ForCausalLM + tokenizer to ``out_dir`` and return the path."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, control_tokens=control_tokens)
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer) + spare_rows,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, max_new_tokens=64
    )
    model.save_pretrained(str(out))
    return out
