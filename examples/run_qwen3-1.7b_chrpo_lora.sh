#!/usr/bin/env bash
# Stage 3 (CHRPO) with LoRA: examples/run_qwen3-1.7b_chrpo.sh plus verl's LoRA settings; everything
# else (data, sizes, sampling, GPU layout) is that script's. With LoRA, verl computes the reference
# policy on the actor with the adapter off (no second model) and trains only the adapter.
#
#   SFT_MODEL=saves/qwen3-1.7b/mixed_sft RL_DATA=data/rl bash examples/run_qwen3-1.7b_chrpo_lora.sh
#
# What a LoRA user gets (docs/hosts.md, "LoRA RL"):
# - LoRA A/B on every linear layer of the decoder (verl's `all-linear`; the LM head is not a target);
# - the embedding rows of the six control tokens trainable too: verl's LoRA alone leaves them frozen,
#   and our verl plugin (extra_cot.rl.lora) adds them as peft `trainable_token_indices`. Qwen3-1.7B
#   ties its LM head to the embedding, so the same rows also score the ratio token the model emits.
#   `+actor_rollout_ref.model.lora.extra_cot_control_rows=false` keeps them frozen (verl's behaviour);
# - vLLM receives merged weights every step (`model.lora.merge=true`, required with trainable rows:
#   vLLM's LoRA runtime has no trainable-token rows);
# - checkpoints under $OUT/global_step_N/actor hold the adapter and the row delta under peft's names.
# Rank 64 / alpha 32 as verl's own LoRA GRPO examples; lr 1e-5 (10x the full fine-tune's 1e-6, LoRA's
# usual ratio) is our choice [R]. Any `key=value` argument is appended and wins.
set -euo pipefail

# This script's folder: the base recipe is found from any working directory.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# LoRA rank and alpha (verl's actor_rollout_ref.model.lora_rank / lora_alpha).
LORA_RANK=${LORA_RANK:-64}
LORA_ALPHA=${LORA_ALPHA:-32}
# Output folder of checkpoints (the base script reads OUT).
export OUT=${OUT:-saves/qwen3-1.7b/chrpo_lora}

# The base recipe with the LoRA overrides; the caller's arguments come last and win.
exec bash "$HERE/run_qwen3-1.7b_chrpo.sh" \
    actor_rollout_ref.model.lora_rank="$LORA_RANK" \
    actor_rollout_ref.model.lora_alpha="$LORA_ALPHA" \
    actor_rollout_ref.model.target_modules=all-linear \
    actor_rollout_ref.model.lora.merge=true \
    actor_rollout_ref.actor.optim.lr=1e-5 \
    trainer.experiment_name=qwen3-1.7b-chrpo-lora \
    "$@"
