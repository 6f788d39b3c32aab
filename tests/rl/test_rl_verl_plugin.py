"""Integration with stock verl: entry point, fresh interpreter, Ray actor, Hydra preset."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROBE = (
    "import verl\n"
    "from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
    "from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls\n"
    "print(get_adv_estimator_fn('chrpo').__module__, get_reward_manager_cls('chrpo').__name__)\n"
)


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    return env


def test_rl_entry_point_declared():
    eps = importlib.metadata.entry_points(group="verl.plugins")
    assert [ep.value for ep in eps if ep.name == "extra_cot"] == ["extra_cot.rl.verl_plugin"]


def test_rl_plugin_resolves_after_import_verl_in_fresh_process():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, capture_output=True, text=True, env=_env(), timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["extra_cot.rl.verl_plugin", "ChrpoRewardManager"]
    assert "extra_cot verl plugin active" in out.stderr  # logged at INFO despite verl's WARNING root


def test_rl_plugin_registration_is_idempotent():
    import importlib

    import verl  # noqa: F401
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    import extra_cot.rl.reward_manager as manager_module
    import extra_cot.rl.verl_plugin as plugin

    importlib.reload(manager_module)
    importlib.reload(plugin)  # a second import must neither raise nor leave a stale object
    assert get_adv_estimator_fn("chrpo") is plugin.compute_chrpo_advantage


@pytest.mark.slow
def test_rl_plugin_resolves_inside_ray_actor():
    script = (
        "import ray\n"
        "ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)\n"
        "@ray.remote\n"
        "def probe():\n"
        "    import verl\n"
        "    from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
        "    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls\n"
        "    return get_adv_estimator_fn('chrpo').__module__, get_reward_manager_cls('chrpo').__name__\n"
        "print(*ray.get(probe.remote()))\n"
        "ray.shutdown()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=_env(), timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-2:] == ["extra_cot.rl.verl_plugin", "ChrpoRewardManager"]


def _cfg_job(tmp_path: Path, model_dir, *extra: str) -> dict:
    data = tmp_path / "x.parquet"
    cmd = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        "+algorithm=chrpo",
        f"data.train_files={data}",
        f"data.val_files={data}",
        f"actor_rollout_ref.model.path={model_dir}",
        *extra,
        "--cfg",
        "job",
    ]
    out = subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return yaml.safe_load(out.stdout)


@pytest.mark.slow
def test_rl_preset_composes_with_main_ppo_and_overrides_win(tmp_path, tiny_model_dir):
    cfg = _cfg_job(tmp_path, tiny_model_dir)
    assert cfg["algorithm"]["adv_estimator"] == "chrpo"
    assert cfg["algorithm"]["chrpo"]["control_token_weight"] == pytest.approx(1e-3)
    assert cfg["reward"]["reward_manager"]["name"] == "chrpo"
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert (rollout["name"], rollout["n"], rollout["temperature"], rollout["top_p"]) == ("vllm", 4, 0.7, 0.9)
    assert cfg["data"]["max_response_length"] == 4096
    over = _cfg_job(
        tmp_path,
        tiny_model_dir,
        "actor_rollout_ref.rollout.n=8",
        "algorithm.chrpo.bonus_weight=0.25",
        "reward.reward_kwargs.chrpo.max_bonus=0.5",
    )
    assert over["actor_rollout_ref"]["rollout"]["n"] == 8
    assert over["algorithm"]["chrpo"]["bonus_weight"] == 0.25
    assert over["reward"]["reward_kwargs"]["chrpo"]["max_bonus"] == 0.5
    assert over["algorithm"]["adv_estimator"] == "chrpo"


def test_rl_preset_keys_each_have_a_comment():
    from importlib.resources import files

    text = (files("extra_cot.rl.config") / "algorithm" / "chrpo.yaml").read_text()
    assert text.startswith("# @package _global_")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and i > 0:
            assert lines[i - 1].strip().startswith("#") or stripped.endswith(":"), (
                f"no comment above {line!r}"
            )


@pytest.mark.slow
def test_rl_example_script_composes(tmp_path, tiny_model_dir):
    """examples/run_qwen3-1.7b_chrpo.sh forwards extra args: `--cfg job` composes its full config."""
    repo = Path(__file__).resolve().parents[2]
    env = _env()
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        SFT_MODEL=str(tiny_model_dir),
        RL_DATA=str(tmp_path),
    )
    out = subprocess.run(
        [
            "bash",
            str(repo / "examples" / "run_qwen3-1.7b_chrpo.sh"),
            "trainer.total_epochs=1",
            "--cfg",
            "job",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = yaml.safe_load(out.stdout)
    assert cfg["algorithm"]["adv_estimator"] == "chrpo"
    assert cfg["data"]["train_files"] == str(tmp_path / "train.parquet")
    assert cfg["trainer"]["total_epochs"] == 1  # a trailing override wins over the script's 3


def test_rl_preset_passes_verl_validate_config(tiny_tokenizer):
    """The composed config passes main_ppo's own checks and resolves our reward manager."""
    import verl  # noqa: F401
    from hydra import compose, initialize_config_module
    from verl.trainer.main_ppo import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    overrides = [
        "+algorithm=chrpo",
        "data.train_files=x.parquet",
        "data.val_files=x.parquet",
        "actor_rollout_ref.model.path=unused",
        "trainer.n_gpus_per_node=8",
        "data.train_batch_size=128",
        "actor_rollout_ref.actor.ppo_mini_batch_size=64",
        "reward.reward_kwargs.chrpo.max_bonus=0.5",
    ]
    with initialize_config_module("verl.trainer.config", version_base=None):
        cfg = compose("ppo_trainer", overrides=overrides)
    assert not need_critic(cfg) and need_reference_policy(cfg)  # GRPO-style: no critic; KL loss needs ref
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    # (verl's RewardManagerConfig dataclass is never built by verl 0.9.1: its __post_init__ calls a
    # missing super().__post_init__; the reward loop resolves the name from the DictConfig instead.)
    from verl.trainer.ppo.reward import load_reward_manager, resolve_reward_manager_cls

    assert resolve_reward_manager_cls(cfg).__name__ == "ChrpoRewardManager"
    # Built exactly as verl's reward-loop workers build it, with the preset's options (+ override).
    manager = load_reward_manager(
        cfg, tiny_tokenizer, reward_router_address=None, reward_model_tokenizer=None
    )
    assert type(manager).__name__ == "ChrpoRewardManager"
    assert manager.compute_score.keywords["max_bonus"] == 0.5
