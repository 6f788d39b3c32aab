#!/usr/bin/env bash
# The whole GPU pipeline for Qwen3-1.7B, one command per step, in the project's one path layout:
#
#   compress -> build-sft -> prepare-model -> SFT -> eval -> sweep -> build-rl -> CHRPO -> merge -> eval
#
#   bash examples/reproduce_qwen3-1.7b.sh --dry-run   # print every command and the sizes, run nothing
#   bash examples/reproduce_qwen3-1.7b.sh             # run them (one node, README "GPU install")
#
# Inputs (environment; defaults in brackets; relative paths are taken from the current directory):
#   BASE_MODEL    [Qwen/Qwen3-1.7B]            local folder or hub id of the base model
#   TRACES        [WORKDIR/data/traces.jsonl]  solved problems with chains of thought (--input-format responses)
#   EVAL_SETS     [gsm8k=WORKDIR/data/gsm8k_test.jsonl math500=WORKDIR/data/math500_test.jsonl:math]  eval --dataset specs
#   RL_QUESTIONS  [WORKDIR/data/rl_questions.jsonl]  RL questions, GSM8K format (question, answer "#### x")
#   WORKDIR       [the repository root]        where data/, models/, saves/ and out/ live
#   N_GPUS [8]  PORT [8000]  RL_TRAIN_BATCH [128]  (the batch of run_qwen3-1.7b_chrpo.sh; build-rl checks it)
# Sizes follow N_GPUS (1, 2, 4, 8, ...): SFT keeps the paper's global batch 128 (per-device 2, the
# accumulation from N_GPUS); evaluation starts one vLLM server per GPU (ports PORT...) and sends
# to all of them (extra-cot eval --endpoints); CHRPO runs verl on N_GPUS. Lengths and sampling are
# Qwen3's documented ones (docs/hosts.md, "The GPU recipe, traced to the hosts' code").
# Every path is absolute, from this script's location and WORKDIR: it runs from any directory.
# NOT run in this repository (no GPU); tests/test_reproduce.py runs --dry-run and composes the
# LLaMA-Factory and verl configs it prints on CPU. Rerunning resumes: compress and eval append.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (use --dry-run or --help)" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)     # examples/
abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
WORKDIR=$(abspath "${WORKDIR:-$(dirname "$HERE")}")

BASE_MODEL=${BASE_MODEL:-Qwen/Qwen3-1.7B}
if [ -e "$BASE_MODEL" ]; then BASE_MODEL=$(abspath "$BASE_MODEL"); fi   # else a hub id
TRACES=$(abspath "${TRACES:-$WORKDIR/data/traces.jsonl}")
EVAL_SETS=${EVAL_SETS:-gsm8k=$WORKDIR/data/gsm8k_test.jsonl math500=$WORKDIR/data/math500_test.jsonl:math}
RL_QUESTIONS=$(abspath "${RL_QUESTIONS:-$WORKDIR/data/rl_questions.jsonl}")
N_GPUS=${N_GPUS:-8}
PORT=${PORT:-8000}
RL_TRAIN_BATCH=${RL_TRAIN_BATCH:-128}

# Sizes. SFT: the paper's global batch 128 = per-device 2 x accumulation x GPUs (docs/method.md Stage 2).
SFT_GLOBAL_BATCH=128
SFT_PER_DEVICE=2
if ! [[ "$N_GPUS" =~ ^[1-9][0-9]*$ ]] || (( SFT_GLOBAL_BATCH % (SFT_PER_DEVICE * N_GPUS) )); then
    echo "N_GPUS=$N_GPUS: must divide the SFT global batch $SFT_GLOBAL_BATCH / per-device $SFT_PER_DEVICE (1, 2, 4, 8, ...)" >&2
    exit 2
fi
SFT_ACCUM=$(( SFT_GLOBAL_BATCH / (SFT_PER_DEVICE * N_GPUS) ))
SFT_CUTOFF=6144              # the paper's SFT cutoff (prompt + response tokens), docs/method.md Stage 2
# Lengths: Qwen3's model card ("Best Practices") asks for 32,768 output tokens for most queries and
# 38,912 for competition math, within its 40,960-token context (config.json max_position_embeddings).
# Ratio 1.0 thinks 1,675 / 2,092 tokens on average on MATH-500 / AMC (docs/method.md, base row)
# with a long tail; the paper's 4096 truncates that tail, and an unclosed think block scores 0.
EVAL_MAX_TOKENS=38912
MAX_MODEL_LEN=40960
RL_MAX_RESPONSE=32768        # CHRPO rollouts (run_qwen3-1.7b_chrpo.sh MAX_RESPONSE_LENGTH)
# Qwen3's documented thinking-mode sampling (model card): temperature 0.6, top_p 0.95, top_k 20, min_p 0.
SAMPLING=(--temperature 0.6 --top-p 0.95 --top-k 20 --min-p 0 --max-tokens "$EVAL_MAX_TOKENS")

# The path layout (README "Configuration"; examples/qwen3-1.7b_mixed.yaml holds the same SFT paths).
COMPRESSED=$WORKDIR/data/compressed.jsonl           # Stage 1 output
SFT_DATA=$WORKDIR/data/sft                          # build-sft: extra_cot_sft.jsonl + dataset_info.json
PREPARED=$WORKDIR/models/qwen3-1.7b-comp            # prepare-model: base + control tokens, rows initialised
SFT_MODEL=$WORKDIR/saves/qwen3-1.7b/mixed_sft       # LLaMA-Factory output_dir
SFT_EVAL=$WORKDIR/out/qwen3-1.7b/eval_sft           # eval of the SFT model
RL_SWEEP=$WORKDIR/out/qwen3-1.7b/rl_sweep           # pass@3 sweep on the RL questions
RL_DATA=$WORKDIR/data/rl                            # build-rl: train.parquet, val.parquet
RL_CKPT=$WORKDIR/saves/qwen3-1.7b/chrpo             # verl checkpoints (trainer.default_local_dir)
RL_MODEL=$WORKDIR/saves/qwen3-1.7b/chrpo_hf         # merged HF folder of the last actor checkpoint
RL_EVAL=$WORKDIR/out/qwen3-1.7b/eval_chrpo          # eval of the CHRPO model

SERVER_PIDS=()

show() {  # one shell-quoted command line (plain words stay plain)
    printf '+'
    for word in "$@"; do
        if [[ "$word" =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then printf ' %s' "$word"; else printf ' %q' "$word"; fi
    done
}

run() {  # print a command; run it unless --dry-run
    show "$@"; printf '\n'
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

serve() {  # one OpenAI-compatible vLLM server for $1 per GPU (GPU i on port PORT+i); wait until all answer
    local i
    for (( i = 0; i < N_GPUS; i++ )); do
        local cmd=(env CUDA_VISIBLE_DEVICES="$i" vllm serve "$1" --served-model-name local_core_model
                   --port "$((PORT + i))" --max-model-len "$MAX_MODEL_LEN")
        show "${cmd[@]}"; printf ' &\n'
        if [ "$DRY_RUN" = 0 ]; then "${cmd[@]}" & SERVER_PIDS+=("$!"); fi
    done
    [ "$DRY_RUN" = 1 ] && return 0
    for (( i = 0; i < N_GPUS; i++ )); do
        until curl -sf "http://127.0.0.1:$((PORT + i))/v1/models" > /dev/null; do
            kill -0 "${SERVER_PIDS[$i]}" || { echo "vLLM server for $1 on GPU $i exited" >&2; exit 1; }
            sleep 5
        done
    done
}

stop_servers() {
    echo "+ kill %vllm"
    if [ "${#SERVER_PIDS[@]}" -gt 0 ]; then
        kill "${SERVER_PIDS[@]}"; wait "${SERVER_PIDS[@]}" || true; SERVER_PIDS=()
    fi
}
trap 'if [ "${#SERVER_PIDS[@]}" -gt 0 ]; then kill "${SERVER_PIDS[@]}"; fi' EXIT

datasets=()
for spec in $EVAL_SETS; do   # name=path[:kind]: the path made absolute
    name=${spec%%=*}; rest=${spec#*=}; path=${rest%%:*}; kind=${rest#"$path"}
    datasets+=(--dataset "$name=$(abspath "$path")$kind")
done
endpoints=127.0.0.1:$PORT
for (( i = 1; i < N_GPUS; i++ )); do endpoints+=",127.0.0.1:$((PORT + i))"; done
client=(--endpoints "$endpoints" --model local_core_model "${SAMPLING[@]}")

echo "# N_GPUS=$N_GPUS, WORKDIR=$WORKDIR"
echo "# SFT: per-device batch $SFT_PER_DEVICE x gradient accumulation $SFT_ACCUM x $N_GPUS GPUs = global batch $((SFT_PER_DEVICE * SFT_ACCUM * N_GPUS)); cutoff $SFT_CUTOFF tokens"
echo "# eval: $N_GPUS vLLM servers, one per GPU (ports $PORT-$((PORT + N_GPUS - 1))); max $EVAL_MAX_TOKENS new tokens; temperature 0.6, top_p 0.95, top_k 20"
echo "# CHRPO: verl on $N_GPUS GPUs; batch $RL_TRAIN_BATCH prompts x 4 responses of at most $RL_MAX_RESPONSE tokens"

# Stage 1: compression (ratios counted with the target model's tokenizer)
run extra-cot compress --input "$TRACES" --input-format responses --output "$COMPRESSED" \
    --ratios 0.2,0.4,0.6,0.8 --tokenizer "$BASE_MODEL"
# Stage 2: SFT data, control tokens, mixed-ratio SFT on N_GPUS ranks (torchrun through LLaMA-Factory)
# rows longer than the SFT cutoff (counted with the base model's tokenizer) are skipped and logged, not truncated
run extra-cot build-sft --input "$COMPRESSED" --output-dir "$SFT_DATA" --tokenizer "$BASE_MODEL" \
    --cutoff-len "$SFT_CUTOFF"
run extra-cot prepare-model --src "$BASE_MODEL" --out "$PREPARED"
run env FORCE_TORCHRUN=1 NPROC_PER_NODE="$N_GPUS" llamafactory-cli train "$HERE/qwen3-1.7b_mixed.yaml" \
    model_name_or_path="$PREPARED" dataset_dir="$SFT_DATA" output_dir="$SFT_MODEL" \
    deepspeed="$HERE/deepspeed/ds_z3_config.json" per_device_train_batch_size="$SFT_PER_DEVICE" \
    gradient_accumulation_steps="$SFT_ACCUM" cutoff_len="$SFT_CUTOFF"
# Evaluation of the SFT model, then the pass@3 sweep CHRPO's targets come from
serve "$SFT_MODEL"
run extra-cot eval "${client[@]}" --output_dir "$SFT_EVAL" "${datasets[@]}" \
    --ratios 0.2,0.4,0.6,0.8,1.0,policy,base
run extra-cot eval "${client[@]}" --output_dir "$RL_SWEEP" --dataset "rl=$RL_QUESTIONS:gsm8k" \
    --ratios 0.2,0.4,0.6,0.8,1.0 --n-samples 3
stop_servers
# Stage 3: RL data (refuses fewer train rows than one batch) and CHRPO
run extra-cot build-rl --sweep "$RL_SWEEP" --output-dir "$RL_DATA" --train-batch-size "$RL_TRAIN_BATCH"
run env SFT_MODEL="$SFT_MODEL" RL_DATA="$RL_DATA" OUT="$RL_CKPT" N_GPUS="$N_GPUS" \
    MAX_RESPONSE_LENGTH="$RL_MAX_RESPONSE" bash "$HERE/run_qwen3-1.7b_chrpo.sh" data.train_batch_size="$RL_TRAIN_BATCH"
if [ "$DRY_RUN" = 1 ]; then STEP='<latest>'; else STEP=$(cat "$RL_CKPT/latest_checkpointed_iteration.txt"); fi
run python -m verl.model_merger merge --backend fsdp --local_dir "$RL_CKPT/global_step_$STEP/actor" \
    --target_dir "$RL_MODEL"
# Evaluation of the CHRPO model (policy mode and fixed ratios)
serve "$RL_MODEL"
run extra-cot eval "${client[@]}" --output_dir "$RL_EVAL" "${datasets[@]}" \
    --ratios 0.2,0.4,0.6,0.8,1.0,policy,base
stop_servers
