"""Tiny, locally built Qwen3-style models for offline tests and the scaled-down demo.

No hub access is needed: a byte-level BPE tokenizer is trained on the spot with ``tokenizers``
on a small arithmetic corpus, with Qwen3's chat markers (``<|im_start|>``, ``<|im_end|>``,
``<think>``, ``</think>``) and a Qwen3-style chat template, and a randomly initialised
``Qwen3ForCausalLM`` (hidden 64, 2 layers, 4 heads of dim 32, 2 KV heads: head_dim ≥ 32 because
vLLM's CPU attention rejects 16, docs/hosts.md) is saved beside it.

Like Qwen3, the embedding can be given spare rows beyond the tokenizer (``spare_rows``) so the
"new token rows are never initialised by LLaMA-Factory" case is reproduced.

Imports torch/transformers/tokenizers: never imported by ``import extra_cot``.
"""

from __future__ import annotations

import random
from pathlib import Path

from extra_cot.chat_template import with_comp_ratio
from extra_cot.prompt import INSTRUCTION, SYSTEM_PROMPT, build_response
from extra_cot.tokens import CONTROL_TOKENS, FIXED_RATIOS

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
    words = (  # noqa: SIM905 (a sentence reads better than a 50-item list)
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
    # a tokenizer with the control tokens is a prepared one: its template takes comp_ratio (as prepare-model's)
    fast.chat_template = with_comp_ratio(CHAT_TEMPLATE) if control_tokens else CHAT_TEMPLATE
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


def format_examples(n: int, seed: int = 0) -> list[dict]:
    """Policy-mode examples "What is a + b?" -> ``<COMP_xx>\\n<think>…</think>\\n\\nThe answer is \\boxed{a+b}``.

    The think block repeats the equation ``round(5 * ratio)`` times, so its length follows the
    chosen ratio (ratio 1.0 = ``ref_full_len`` tokens) and the reward's calibration has something to see.
    Each dict: ``question``, ``answer``, ``response``.
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        ratio = rng.choice(FIXED_RATIOS)
        think = " ".join([f"{a} + {b} = {a + b}."] * round(5 * ratio))
        answer = f"The answer is \\boxed{{{a + b}}}."
        rows.append({"question": f"What is {a} + {b}?", "answer": str(a + b),
                     "response": build_response(think, answer, ratio)})
    return rows


def rollout_to_reference_kl_ratio(step_metrics: dict) -> float:
    """How close one verl training step's rollout log-probs are to the reference's, relative to the actor's.

    verl logs two k3 KL estimates over the same step's response tokens: ``actor/kl_loss``, the actor
    (the weights that just sampled, if the sync worked) against the reference (the initial weights),
    and ``rollout_corr/k3_kl``, the actor against the log-probs vLLM returned while sampling. Had vLLM
    kept the initial weights, its log-probs would be the reference's and the ratio ``k3_kl / kl_loss``
    would be about 1; with synced weights it is rounding noise over a real policy change (0.002-0.033 at
    step 3 of the slow CPU run). For tests that check which weights the rollouts used.
    """
    kl_actor_ref = step_metrics["actor/kl_loss"]
    if kl_actor_ref <= 0:
        raise ValueError(f"actor/kl_loss is {kl_actor_ref}: the actor has not left the reference yet")
    return step_metrics["rollout_corr/k3_kl"] / kl_actor_ref


def train_format_model(model_dir: str | Path, out_dir: str | Path, steps: int = 300, seed: int = 0) -> Path:
    """Teach a tiny model the policy-mode output format (plain torch, ~1 min on 2 cores).

    Trains on :func:`format_examples` rendered exactly as verl renders a prompt (the tokenizer's
    chat template with the generation prompt), loss on the response only. The result follows the
    format but adds badly: under the real CHRPO reward its samples spread over the tiers.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from extra_cot.prompt import build_messages

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    examples = []
    for row in format_examples(512, seed):
        prompt = tokenizer.apply_chat_template(
            build_messages(row["question"], "policy"), tokenize=False, add_generation_prompt=True
        )
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(row["response"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        examples.append((p_ids + r_ids, [-100] * len(p_ids) + r_ids))
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    batch = 16
    for step in range(steps):
        chunk = [examples[(step * batch + i) % len(examples)] for i in range(batch)]
        width = max(len(ids) for ids, _ in chunk)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in chunk])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in chunk])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(x) for x, _ in chunk])[:, None]).long()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    out = Path(out_dir)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def write_format_rl_data(model_dir: str | Path, out_dir: str | Path, n_train: int = 16, n_val: int = 4,
                         seed: int = 1) -> Path:
    """``train.parquet``/``val.parquet`` in ``extra-cot build-rl``'s schema for the :func:`format_examples` task.

    ``ref_full_len`` is the token count of the full (ratio 1.0) think block, ``gt_ratio`` 0.4.
    """
    import pandas as pd
    from transformers import AutoTokenizer

    from extra_cot.prompt import build_messages
    from extra_cot.think import count_tokens, split_think

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = format_examples(n_train + n_val, seed)
    for split, part in (("train", rows[:n_train]), ("val", rows[n_train:])):
        records = []
        for i, row in enumerate(part):
            a_plus_b = row["question"].removeprefix("What is ").removesuffix("?")
            full_think, _ = split_think(build_response(" ".join([f"{a_plus_b} = {row['answer']}."] * 5), "x"))
            records.append({
                "data_source": "tiny_add", "prompt": build_messages(row["question"], "policy"), "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": row["answer"]},
                "extra_info": {"gt_ratio": 0.4, "ref_full_len": float(count_tokens(full_think, tokenizer)),
                               "comp_tolerance": 0.1, "rho": 0.4, "dataset": "tiny_add", "index": i,
                               "split": split},
            })
        pd.DataFrame(records).to_parquet(out / f"{split}.parquet", index=False)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m extra_cot.testing --out DIR``: a format-trained tiny model + RL data for a CPU try-out of Stage 3."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m extra_cot.testing", description=main.__doc__,
        epilog="example:\n  python -m extra_cot.testing --out runs/tiny-rl\n"
        "  bash examples/run_chrpo_cpu.sh runs/tiny-rl/sft runs/tiny-rl/rl trainer.total_training_steps=2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="writes OUT/base, OUT/sft (the model) and OUT/rl (parquet)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    model = train_format_model(build_tiny_model(out / "base"), out / "sft")
    write_format_rl_data(model, out / "rl")
    print(f"bash examples/run_chrpo_cpu.sh {model} {out / 'rl'} trainer.total_training_steps=2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
