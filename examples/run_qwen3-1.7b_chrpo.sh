#!/usr/bin/env bash
# Stage 3: CHRPO on the Stage-2 SFT model (Qwen3-1.7B) with stock verl 0.9.1 on one node of N_GPUS GPUs.
# This GPU command is not run in this repository's CI: the tests compose it with `--cfg job`, and
# run the same `main_ppo +algorithm=chrpo` on CPU through extra_cot.rl.cpu_launch
# (examples/run_chrpo_cpu.sh; docs/hosts.md, "verl 0.9.1 on a CPU-only machine"). Install `extra-cot[rl]` on every node first: the verl plugin
# (estimator + reward manager) and the `+algorithm=chrpo` preset load through entry points; the
# preset stops the run at start-up when the plugin did not load (extra_cot.rl.startup_check).
#
#   SFT_MODEL=saves/qwen3-1.7b/mixed_sft RL_DATA=data/rl bash examples/run_qwen3-1.7b_chrpo.sh
#
# RL_DATA comes from (the whole pipeline, same paths: examples/reproduce_qwen3-1.7b.sh):
#   extra-cot eval ... --ratios 0.2,0.4,0.6,0.8,1.0 --n-samples 3 --output_dir out/qwen3-1.7b/rl_sweep  (SFT model)
#   extra-cot build-rl --sweep out/qwen3-1.7b/rl_sweep --output-dir "$RL_DATA" --train-batch-size 128
# Settings (docs/hosts.md, "The GPU recipe, traced to the hosts' code"): policy mode, n = 4
# (docs/method.md Stage 3 [P], set by the preset); lr 1e-6 and KL 0.001 from Thinkless (preset).
# Here, for Qwen3 [R]: sampling 0.6 / 0.95 / top-k 20 (Qwen3's documented thinking-mode settings,
# instead of the paper's 0.7 / 0.9) and MAX_RESPONSE_LENGTH 32768 new tokens (Qwen3's documented
# output length; the paper's 4096 truncates ratio 1.0 on MATH-500/AMC). GPU layout: FSDP2 (the
# strategy the CPU runs test) and sdpa attention with padded batches (the install has no flash-attn;
# verl's default flash_attention_2 + use_remove_padding would need it). Batch sizes, epochs: ours [R].
# Relative SFT_MODEL / RL_DATA / OUT are taken from the current directory and made absolute.
# Any `key=value` argument is appended and wins.
set -euo pipefail

abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }

SFT_MODEL=$(abspath "${SFT_MODEL:?set SFT_MODEL to the Stage-2 model directory (with the control tokens)}")
RL_DATA=$(abspath "${RL_DATA:?set RL_DATA to the output of extra-cot build-rl}")
N_GPUS=${N_GPUS:-8}
OUT=$(abspath "${OUT:-saves/qwen3-1.7b/chrpo}")
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-1024}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-32768}
# verl packs micro-batches by tokens and refuses a sequence longer than the budget: one whole sequence.
MAX_TOKENS_PER_GPU=$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))

exec python -m verl.trainer.main_ppo \
    +algorithm=chrpo \
    data.train_files="$RL_DATA/train.parquet" \
    data.val_files="$RL_DATA/val.parquet" \
    data.train_batch_size=128 \
    data.max_prompt_length="$MAX_PROMPT_LENGTH" \
    data.max_response_length="$MAX_RESPONSE_LENGTH" \
    +data.apply_chat_template_kwargs.enable_thinking=true \
    actor_rollout_ref.model.path="$SFT_MODEL" \
    +actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    actor_rollout_ref.model.use_remove_padding=false \
    actor_rollout_ref.model.enable_gradient_checkpointing=true \
    actor_rollout_ref.actor.strategy=fsdp2 \
    actor_rollout_ref.actor.fsdp_config.strategy=fsdp2 \
    actor_rollout_ref.ref.fsdp_config.strategy=fsdp2 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU" \
    actor_rollout_ref.actor.fsdp_config.param_offload=false \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.n=4 \
    actor_rollout_ref.rollout.temperature=0.6 \
    actor_rollout_ref.rollout.top_p=0.95 \
    actor_rollout_ref.rollout.top_k=20 \
    actor_rollout_ref.rollout.val_kwargs.temperature=0.6 \
    actor_rollout_ref.rollout.val_kwargs.top_p=0.95 \
    actor_rollout_ref.rollout.val_kwargs.top_k=20 \
    trainer.n_gpus_per_node="$N_GPUS" \
    trainer.nnodes=1 \
    trainer.total_epochs=3 \
    trainer.save_freq=50 \
    trainer.test_freq=25 \
    trainer.val_before_train=true \
    trainer.logger='["console"]' \
    trainer.project_name=extra-cot \
    trainer.experiment_name=qwen3-1.7b-chrpo \
    trainer.default_local_dir="$OUT" \
    "$@"
