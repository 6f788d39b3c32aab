#!/usr/bin/env bash
# The whole GPU pipeline for Qwen3-1.7B, one command per step, in the project's one path layout:
#
#   compress -> build-sft -> prepare-model -> SFT -> eval -> sweep -> build-rl -> CHRPO -> merge -> eval
#
#   bash examples/reproduce_qwen3-1.7b.sh --dry-run   # print every command, run nothing
#   bash examples/reproduce_qwen3-1.7b.sh             # run them (8-GPU node, README "GPU install")
#
# Inputs (environment; defaults in brackets):
#   BASE_MODEL    [Qwen/Qwen3-1.7B]            local folder or hub id of the base model
#   TRACES        [data/traces.jsonl]          solved problems with chains of thought (--input-format responses)
#   EVAL_SETS     [gsm8k=data/gsm8k_test.jsonl math500=data/math500_test.jsonl:math]  extra-cot eval --dataset specs
#   RL_QUESTIONS  [data/rl_questions.jsonl]    RL questions, GSM8K format (question, answer "#### x")
#   N_GPUS [8]  PORT [8000]  RL_TRAIN_BATCH [128]  (the batch of run_qwen3-1.7b_chrpo.sh; build-rl checks it)
# NOT run in this repository (no GPU); tests/test_reproduce.py runs --dry-run and composes the
# LLaMA-Factory and verl configs it prints on CPU. Rerunning resumes: compress and eval append.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (use --dry-run or --help)" >&2; exit 2 ;;
    esac
done

BASE_MODEL=${BASE_MODEL:-Qwen/Qwen3-1.7B}
TRACES=${TRACES:-data/traces.jsonl}
EVAL_SETS=${EVAL_SETS:-gsm8k=data/gsm8k_test.jsonl math500=data/math500_test.jsonl:math}
RL_QUESTIONS=${RL_QUESTIONS:-data/rl_questions.jsonl}
N_GPUS=${N_GPUS:-8}
PORT=${PORT:-8000}
RL_TRAIN_BATCH=${RL_TRAIN_BATCH:-128}

# The path layout (README "Configuration"; examples/qwen3-1.7b_mixed.yaml holds the same SFT paths).
COMPRESSED=data/compressed.jsonl           # Stage 1 output
SFT_DATA=data/sft                          # build-sft: extra_cot_sft.jsonl + dataset_info.json
PREPARED=models/qwen3-1.7b-comp            # prepare-model: base + control tokens, rows initialised
SFT_MODEL=saves/qwen3-1.7b/mixed_sft       # LLaMA-Factory output_dir
SFT_EVAL=out/qwen3-1.7b/eval_sft           # eval of the SFT model
RL_SWEEP=out/qwen3-1.7b/rl_sweep           # pass@3 sweep on the RL questions
RL_DATA=data/rl                            # build-rl: train.parquet, val.parquet
RL_CKPT=saves/qwen3-1.7b/chrpo             # verl checkpoints (trainer.default_local_dir)
RL_MODEL=saves/qwen3-1.7b/chrpo_hf         # merged HF folder of the last actor checkpoint
RL_EVAL=out/qwen3-1.7b/eval_chrpo          # eval of the CHRPO model

HERE=$(dirname "$0")
SERVER_PID=

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

serve() {  # start an OpenAI-compatible vLLM server for $1 and wait until it answers
    show vllm serve "$1" --served-model-name local_core_model --port "$PORT" --max-model-len 20000; printf ' &\n'
    [ "$DRY_RUN" = 1 ] && return 0
    vllm serve "$1" --served-model-name local_core_model --port "$PORT" --max-model-len 20000 &
    SERVER_PID=$!
    until curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null; do
        kill -0 "$SERVER_PID" || { echo "vLLM server for $1 exited" >&2; exit 1; }
        sleep 5
    done
}

stop_server() {
    echo "+ kill %vllm"
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; fi
}
trap 'if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID"; fi' EXIT

datasets=()
for spec in $EVAL_SETS; do datasets+=(--dataset "$spec"); done
client=(--host 127.0.0.1 --port "$PORT" --model local_core_model)

# Stage 1: compression (ratios counted with the target model's tokenizer)
run extra-cot compress --input "$TRACES" --input-format responses --output "$COMPRESSED" \
    --ratios 0.2,0.4,0.6,0.8 --tokenizer "$BASE_MODEL"
# Stage 2: SFT data, control tokens, mixed-ratio SFT
run extra-cot build-sft --input "$COMPRESSED" --output-dir "$SFT_DATA"
run extra-cot prepare-model --src "$BASE_MODEL" --out "$PREPARED"
run llamafactory-cli train examples/qwen3-1.7b_mixed.yaml model_name_or_path="$PREPARED" \
    dataset_dir="$SFT_DATA" output_dir="$SFT_MODEL"
# Evaluation of the SFT model, then the pass@3 sweep CHRPO's targets come from
serve "$SFT_MODEL"
run extra-cot eval "${client[@]}" --output_dir "$SFT_EVAL" "${datasets[@]}" \
    --ratios 0.2,0.4,0.6,0.8,1.0,policy,base
run extra-cot eval "${client[@]}" --output_dir "$RL_SWEEP" --dataset "rl=$RL_QUESTIONS:gsm8k" \
    --ratios 0.2,0.4,0.6,0.8,1.0 --n-samples 3
stop_server
# Stage 3: RL data (refuses fewer train rows than one batch) and CHRPO
run extra-cot build-rl --sweep "$RL_SWEEP" --output-dir "$RL_DATA" --train-batch-size "$RL_TRAIN_BATCH"
run env SFT_MODEL="$SFT_MODEL" RL_DATA="$RL_DATA" OUT="$RL_CKPT" N_GPUS="$N_GPUS" \
    bash "$HERE/run_qwen3-1.7b_chrpo.sh" data.train_batch_size="$RL_TRAIN_BATCH"
if [ "$DRY_RUN" = 1 ]; then STEP='<latest>'; else STEP=$(cat "$RL_CKPT/latest_checkpointed_iteration.txt"); fi
run python -m verl.model_merger merge --backend fsdp --local_dir "$RL_CKPT/global_step_$STEP/actor" \
    --target_dir "$RL_MODEL"
# Evaluation of the CHRPO model (policy mode and fixed ratios)
serve "$RL_MODEL"
run extra-cot eval "${client[@]}" --output_dir "$RL_EVAL" "${datasets[@]}" \
    --ratios 0.2,0.4,0.6,0.8,1.0,policy,base
stop_server
