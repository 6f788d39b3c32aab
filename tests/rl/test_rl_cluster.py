"""Dropped into a running Ray cluster the way an operator starts one (issue 19, item 6).

``ray start --head`` (16 CPUs and the one fake accelerator slot the CPU platform needs) plus a second
node process with its own resources, both on this machine, then, against that cluster:

* a probe task pinned to each node imports verl there and finds our estimator and reward manager
  registered (the ``verl.plugins`` entry point) and ``extra_cot`` importable;
* ``extra-cot compress --ray`` (``RAY_ADDRESS``) writes the bytes the single-process run writes;
* 2 CHRPO steps of verl's real ``main_ppo +algorithm=chrpo`` (``python -m extra_cot.rl.cpu_launch
  --ray-address``): our estimator and reward manager ran in the cluster's workers.

``ray stop --force`` at the end stops every Ray process of this machine (run the slow suite alone).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from extra_cot.rl.calllog import read_calls

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
PROBE = r"""
import json, os, sys
import ray

ray.init(address=sys.argv[1])

@ray.remote(num_cpus=0.1)
def probe():
    import extra_cot
    import verl  # loads the verl.plugins entry points
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
            "estimator": get_adv_estimator_fn("chrpo").__module__,
            "manager": get_reward_manager_cls("chrpo").__name__, "extra_cot": extra_cot.__file__}

out = {res: ray.get(probe.options(resources={res: 0.01}).remote()) for res in ("head_node", "second_node")}
out["nodes"] = len([n for n in ray.nodes() if n["Alive"]])
print("PROBE " + json.dumps(out))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv, env, timeout=600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))}\n{(proc.stdout + proc.stderr)[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def cluster():
    """Head + second node via ``ray start``; yields ``(address, env)``; ``ray stop --force`` after."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # Ray 2.60's token auth (docs/hosts.md)
    env.pop("RAY_ADDRESS", None)
    temp = tempfile.mkdtemp(prefix="xc-ray-", dir="/tmp")  # short: Ray's AF_UNIX paths (107 bytes)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    try:
        _run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=16",
              "--num-gpus=1", '--resources={"head_node": 1}', "--include-dashboard=false",
              "--disable-usage-stats", f"--temp-dir={temp}"], env)
        _run([RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
              '--resources={"second_node": 1}', "--disable-usage-stats"], env)
        yield address, env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, check=False, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_plugin_is_registered_in_workers_on_both_nodes(cluster, tmp_path):
    address, env = cluster
    proc = _run([sys.executable, "-c", PROBE, address], env, timeout=300)
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("PROBE "))[6:])
    assert out["nodes"] == 2
    head, second = out["head_node"], out["second_node"]
    assert head["node"] != second["node"]  # two raylets, one task on each
    for worker in (head, second):
        assert worker["estimator"] == "extra_cot.rl.verl_plugin" and worker["manager"] == "ChrpoRewardManager"
        assert worker["extra_cot"].endswith("extra_cot/__init__.py")


def test_compress_ray_joins_the_running_cluster(cluster, tmp_path, tiny_model_dir):
    address, env = cluster
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({
        "question": f"Ann has {a} pens and buys {b} boxes of {c} pens. How many pens does she have?",
        "answer": f"The boxes hold {b} * {c} = <<{b}*{c}={b * c}>>{b * c} pens.\nSo she has {a} + {b * c} = "
                  f"<<{a}+{b * c}={a + b * c}>>{a + b * c} pens in total.\n#### {a + b * c}"}) + "\n"
        for a, b, c in ((3, 2, 5), (10, 4, 6), (7, 3, 9), (12, 5, 8), (1, 9, 9), (4, 4, 4))))
    base = [sys.executable, "-m", "extra_cot.cli", "compress", "--input", str(inp), "--input-format", "gsm8k",
            "--scorer", "heuristic", "--tokenizer", str(tiny_model_dir)]
    _run([*base, "--output", str(tmp_path / "one.jsonl")], env)
    proc = _run([*base, "--output", str(tmp_path / "ray.jsonl"), "--ray", "--num-workers", "2", "--batch-size", "2"],
                {**env, "RAY_ADDRESS": address})
    assert "Connected to Ray cluster" in proc.stdout + proc.stderr  # joined, did not start a local one
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_two_chrpo_steps_run_on_the_running_cluster(cluster):
    from extra_cot.testing import build_tiny_model, train_format_model, write_format_rl_data

    address, env = cluster
    tmp = Path(tempfile.mkdtemp(prefix="xc-rl-", dir="/tmp"))
    base = build_tiny_model(tmp / "base")
    model = train_format_model(base, tmp / "sft", steps=150)
    data = write_format_rl_data(model, tmp / "rl", n_train=8, n_val=2)
    calls, metrics = tmp / "calls.jsonl", tmp / "metrics.jsonl"
    _run([sys.executable, "-m", "extra_cot.rl.cpu_launch", str(model), str(data), "--ray-address", address,
          "--call-log", str(calls), "--metrics", str(metrics), "trainer.total_training_steps=2",
          "data.train_batch_size=4", "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.actor.ppo_mini_batch_size=4",
          "data.max_prompt_length=128", "data.max_response_length=48", "actor_rollout_ref.rollout.max_model_len=256",
          "trainer.total_epochs=10"], env, timeout=900, cwd=tmp)
    estimator = read_calls(calls, "estimator")
    rewards = [c for c in read_calls(calls, "reward") if c.get("split") != "val"]
    assert len(estimator) == 2 and len(rewards) == 2 * 4 * 2
    steps = {json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.strip()}
    assert {1, 2} <= steps
    shutil.rmtree(tmp, ignore_errors=True)
