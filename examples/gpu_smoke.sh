#!/usr/bin/env bash
# A GPU smoke run for the first hour on a node: the GPU path end to end at tiny sizes on ONE GPU,
# with a model built here (no hub download), in a few minutes:
#
#   model  a tiny Qwen3-style model + tokenizer with the control tokens, and a copy trained on the
#          answer format, with RL data for it (python -m extra_cot.testing)
#   sft    LLaMA-Factory SFT of the tiny model with the canonical YAML, DeepSpeed ZeRO-3, bf16, 2 steps
#   eval   a vLLM GPU server for the SFT model and `extra-cot eval` at two ratios (0.2, 1.0)
#   rl     2 CHRPO steps with verl on the GPU (examples/run_qwen3-1.7b_chrpo.sh: FSDP2, sdpa, vLLM
#          rollouts) from the format-trained copy, our estimator and reward manager called each step
#   merge  verl.model_merger of the last actor checkpoint into a Hugging Face folder
#
#   bash examples/gpu_smoke.sh --dry-run    # print the steps, run nothing (works anywhere, no GPU)
#   bash examples/gpu_smoke.sh              # run them; outputs in OUT [WORKDIR/runs/gpu_smoke]
#
# Environment: OUT, WORKDIR [the repository root], PORT [8100], CUDA_VISIBLE_DEVICES (one GPU is
# used: the first visible). Needs the GPU install (README "GPU install": '.[sft,rl,eval,serve-gpu,zero3]').
# After each part it prints what it checked and how long the part took. NOT run in this repository
# (no GPU here); tests/test_gpu_smoke.py checks the dry run (which also parses every check).
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (use --dry-run or --help)" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)     # examples/
abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
REPO=$(dirname "$HERE")
WORKDIR=$(abspath "${WORKDIR:-$REPO}")
OUT=$(abspath "${OUT:-$WORKDIR/runs/gpu_smoke}")
PORT=${PORT:-8100}
PYTHON=${PYTHON:-python}

TINY=$OUT/tiny                      # base/ (tokenizer with control tokens), sft/ (format-trained), rl/ (parquet)
SFT_OUT=$OUT/sft                    # LLaMA-Factory output_dir
EVAL_OUT=$OUT/eval                  # extra-cot eval output tree
RL_CKPT=$OUT/rl_ckpt                # verl checkpoints
RL_MODEL=$OUT/rl_merged             # merged actor
CALLS=$OUT/rl_calls.jsonl           # our estimator's / reward manager's call record (EXTRA_COT_CALL_LOG)
EVAL_SET=$REPO/tests/fixtures/gsm8k_train_head.jsonl
SERVER_PID=
REPORT=()

show() {
    printf '+'
    for word in "$@"; do
        if [[ "$word" =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then printf ' %s' "$word"; else printf ' %q' "$word"; fi
    done
    printf '\n'
}
run() { show "$@"; if [ "$DRY_RUN" = 0 ]; then "$@"; fi; }
part() { echo "== $1: $2"; PART=$1; STARTED=$SECONDS; }
checked() {  # record what the part checked and its duration
    local line
    line=$(printf '%-9s %5d s  %s' "$PART" "$((SECONDS - STARTED))" "$1")
    if [ "$DRY_RUN" = 1 ]; then line=$(printf '%-9s   (dry run)  %s' "$PART" "$1"); fi
    REPORT+=("$line"); [ "$DRY_RUN" = 1 ] || echo "ok $line"
}
check() {  # a check run by python; a dry run only parses it (where a python is on PATH)
    if [ "$DRY_RUN" = 1 ]; then
        if command -v "$PYTHON" > /dev/null; then
            "$PYTHON" -c 'import ast, sys; ast.parse(sys.argv[1])' "$2" || { echo "BROKEN CHECK: $1" >&2; exit 1; }
        fi
        echo "  (checks: $1)"; return 0
    fi
    "$PYTHON" -c "$2" || { echo "FAILED: $1" >&2; exit 1; }
}
trap 'if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID"; fi' EXIT

part preflight "one GPU, bf16, the installed hosts"
check "CUDA GPU with bf16; hosts importable and of the tested releases" "
import torch, importlib.metadata as m
assert torch.cuda.is_available(), 'no CUDA GPU visible'
assert torch.cuda.is_bf16_supported(), 'this GPU has no bf16'
import llamafactory, verl, vllm, deepspeed  # noqa
from extra_cot.hostcheck import require_version
for d in ('llamafactory', 'verl', 'vllm'): require_version(d, None, 'gpu_smoke')
print('GPU', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| vllm', m.version('vllm'),
      '| verl', m.version('verl'), '| llamafactory', m.version('llamafactory'), '| deepspeed', m.version('deepspeed'))
"
[ "$DRY_RUN" = 1 ] || export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES%%,*}
checked "CUDA GPU with bf16, hosts of the tested releases"

part model "tiny Qwen3-style model with the control tokens, built here"
run "$PYTHON" -m extra_cot.testing --out "$TINY"
check "model folders and RL parquet written" "
from pathlib import Path; t = Path('$TINY')
for p in ('base/config.json', 'sft/config.json', 'rl/train.parquet', 'rl/val.parquet'): assert (t / p).is_file(), p
"
checked "base, format-trained copy and RL data in $TINY"

part sft "LLaMA-Factory, DeepSpeed ZeRO-3, bf16, 2 steps"
run env FORCE_TORCHRUN=1 NPROC_PER_NODE=1 llamafactory-cli train "$HERE/qwen3-1.7b_mixed.yaml" \
    model_name_or_path="$TINY/base" dataset_dir="$REPO/data_templates" dataset=extra_cot_sample \
    output_dir="$SFT_OUT" deepspeed="$HERE/deepspeed/ds_z3_config.json" bf16=true max_steps=2 \
    per_device_train_batch_size=2 gradient_accumulation_steps=1 cutoff_len=1024 logging_steps=1 \
    preprocessing_num_workers=1 dataloader_num_workers=0 save_strategy=no plot_loss=false
check "2 logged steps with a finite loss; the saved model loads in bf16 on the GPU" "
import json, math, torch; from pathlib import Path
from transformers import AutoModelForCausalLM
log = [json.loads(l) for l in Path('$SFT_OUT/trainer_log.jsonl').read_text().splitlines()]
losses = [r['loss'] for r in log if 'loss' in r]
assert len(losses) == 2 and all(math.isfinite(x) for x in losses), log
m = AutoModelForCausalLM.from_pretrained('$SFT_OUT', dtype=torch.bfloat16).cuda()
print('losses', losses, '| parameters', sum(p.numel() for p in m.parameters()))
"
checked "ZeRO-3 bf16 SFT: 2 steps, finite loss, model saved and reloaded on the GPU"

part eval "vLLM on the GPU, extra-cot eval at ratios 0.2 and 1.0"
serve_cmd=(vllm serve "$SFT_OUT" --served-model-name local_core_model --port "$PORT" --max-model-len 1024
           --gpu-memory-utilization 0.3)
show "${serve_cmd[@]}"
if [ "$DRY_RUN" = 0 ]; then
    "${serve_cmd[@]}" & SERVER_PID=$!
    until curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null; do
        kill -0 "$SERVER_PID" || { echo "FAILED: the vLLM server exited" >&2; exit 1; }
        sleep 3
    done
fi
run extra-cot eval --host 127.0.0.1 --port "$PORT" --model local_core_model --output_dir "$EVAL_OUT" \
    --dataset "smoke=$EVAL_SET:gsm8k" --limit 8 --ratios 0.2,1.0 --max-tokens 128 \
    --temperature 0.6 --top-p 0.95 --top-k 20
echo "+ kill %vllm"
if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; fi
check "8 predictions and metrics per ratio" "
import json; from pathlib import Path
for r in ('0.2', '1.0'):
    d = Path('$EVAL_OUT/smoke') / r
    preds = json.loads((d / 'prediction.json').read_text()); assert len(preds) == 8, (r, len(preds))
    print(r, json.loads((d / 'metrics.json').read_text()))
"
checked "vLLM GPU server answered; 2 ratios x 8 items scored"

part rl "2 CHRPO steps, verl on the GPU (FSDP2, sdpa, vLLM rollouts)"
run env SFT_MODEL="$TINY/sft" RL_DATA="$TINY/rl" OUT="$RL_CKPT" N_GPUS=1 MAX_PROMPT_LENGTH=256 \
    MAX_RESPONSE_LENGTH=128 EXTRA_COT_CALL_LOG="$CALLS" bash "$HERE/run_qwen3-1.7b_chrpo.sh" \
    data.train_batch_size=2 actor_rollout_ref.actor.ppo_mini_batch_size=2 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.3 actor_rollout_ref.rollout.max_model_len=512 \
    actor_rollout_ref.rollout.agent.num_workers=1 reward.num_workers=1 data.dataloader_num_workers=0 \
    trainer.total_training_steps=2 trainer.save_freq=2 trainer.test_freq=-1 trainer.val_before_train=false \
    trainer.experiment_name=gpu-smoke
check "our estimator ran twice with non-zero advantages; the step-2 actor checkpoint exists" "
import json; from pathlib import Path
calls = [json.loads(l) for l in Path('$CALLS').read_text().splitlines()]
est = [c for c in calls if c['kind'] == 'estimator']
assert len(est) == 2, [c['kind'] for c in calls]
print('estimator calls', [(c['rows'], c['nonzero_rows']) for c in est], '| reward-manager calls', len(calls) - len(est))
assert any(c['nonzero_rows'] for c in est), 'every advantage was 0'
assert (Path('$RL_CKPT') / 'global_step_2' / 'actor').is_dir()
"
checked "2 steps; chrpo estimator and reward manager called; checkpoint global_step_2"

part merge "verl.model_merger into a Hugging Face folder"
run "$PYTHON" -m verl.model_merger merge --backend fsdp --local_dir "$RL_CKPT/global_step_2/actor" \
    --target_dir "$RL_MODEL"
check "the merged model loads and generates on the GPU" "
import torch; from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained('$TINY/sft')
m = AutoModelForCausalLM.from_pretrained('$RL_MODEL', dtype=torch.bfloat16).cuda()
ids = tok('1 + 1 =', return_tensors='pt').input_ids.cuda()
print(repr(tok.decode(m.generate(ids, max_new_tokens=8, do_sample=False)[0])))
"
checked "merged actor in $RL_MODEL loads and generates"

echo "== summary (part, seconds, what was checked)$([ "$DRY_RUN" = 1 ] && echo ': dry run, nothing ran')"
printf '%s\n' "${REPORT[@]}"
