"""`extra-cot eval` against a REAL vLLM server on CPU (the session fixture ``vllm_server``).

How control tokens are proven to survive: the random tiny model rarely emits them by itself, so
the sweep passes ``logit_bias`` (via ``--extra-body``) pushing ``<COMP_40>``'s id; with the
default ``skip_special_tokens=False`` the token text is in every output, and the same request
with ``skip_special_tokens=True`` returns it stripped, so the flag is what keeps it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from extra_cot.eval.cli import main
from extra_cot.eval.store import RECORD_KEYS


def gsm_file(path, n):
    rows = [
        {
            "question": f"Tom has {i} apples and buys 2 more. How many apples now?",
            "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def base_args(server, out, data, *extra):
    return [
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--model",
        server.served_model_name,
        "--output_dir",
        str(out),
        "--dataset",
        f"gsm8k={data}",
        *extra,
    ]


def test_unreachable_server_is_a_clear_error(tmp_path, capsys):
    from extra_cot.eval.server import free_port

    data = gsm_file(tmp_path / "g.jsonl", 2)
    rc = main(["--port", str(free_port()), "--output_dir", str(tmp_path / "o"), "--dataset", f"gsm8k={data}"])
    assert rc == 1
    assert "cannot reach an OpenAI-compatible server" in capsys.readouterr().err


def test_retries_then_succeeds_on_transient_errors():
    import asyncio

    from extra_cot.eval.client import post_with_retries

    calls = []

    def handler(request):  # a flaky server: two 503s, then an answer
        calls.append(request)
        return httpx.Response(503, text="busy") if len(calls) < 3 else httpx.Response(200, json={"ok": 1})

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await post_with_retries(
                client, "http://x/v1/chat/completions", {}, retries=3, backoff_s=0.01
            )

    assert asyncio.run(go()) == {"ok": 1} and len(calls) == 3


@pytest.mark.slow
def test_wrong_model_name_lists_served_names(vllm_server, tmp_path, capsys):
    data = gsm_file(tmp_path / "g.jsonl", 2)
    args = base_args(vllm_server, tmp_path / "o", data)
    args[args.index("--model") + 1] = "no_such_model"
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "'no_such_model' is not served" in err and "local_core_model" in err


@pytest.mark.slow
def test_two_ratio_sweep_tree_and_control_tokens(vllm_server, tiny_tokenizer, tmp_path):
    data = gsm_file(tmp_path / "g.jsonl", 3)
    comp40 = tiny_tokenizer.convert_tokens_to_ids("<COMP_40>")
    bias = json.dumps({"logit_bias": {str(comp40): 100}})
    out = tmp_path / "out"
    assert (
        main(
            base_args(
                vllm_server,
                out,
                data,
                "--ratios",
                "0.2,1.0",
                "--n-samples",
                "2",
                "--max-tokens",
                "16",
                "--extra-body",
                bias,
                "--concurrency",
                "4",
            )
        )
        == 0
    )
    for ratio, token in (("0.2", "<COMP_20>"), ("1.0", "<COMP_100>")):
        preds = json.loads((out / "gsm8k" / ratio / "prediction.json").read_text())
        assert [(r["index"], r["sample"]) for r in preds] == [(i, s) for i in range(3) for s in range(2)]
        assert all(tuple(r) == RECORD_KEYS for r in preds)
        assert all(r["prompt"].endswith(f" {token}") for r in preds)
        assert all(r["output"].startswith("<COMP_40>") and r["control"] == "<COMP_40>" for r in preds)
        assert all(r["gold"] == str(r["index"] + 2) and r["correct"] is False for r in preds)
        metrics = json.loads((out / "gsm8k" / ratio / "metrics.json").read_text())
        assert metrics["n"] == 6 and metrics["control_distribution"] == {"<COMP_40>": 1.0}
        assert metrics["act_ratio"] is None  # no base run in this sweep
    assert "| gsm8k | 0.2 | 6 |" in (out / "summary.md").read_text()
    assert json.loads((out / "eval_config.json").read_text())["ratios"] == ["0.2", "1.0"]
    # the same request with skip_special_tokens=True loses the token: the flag is what keeps it
    body = {
        "model": "local_core_model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "logit_bias": {str(comp40): 100},
        "skip_special_tokens": True,
    }
    stripped = httpx.post(f"{vllm_server.base_url}/chat/completions", json=body, timeout=60).json()
    assert "<COMP_40>" not in stripped["choices"][0]["message"]["content"]


@pytest.mark.slow
def test_force_control_prefill_against_real_vllm(vllm_server, tiny_tokenizer, tmp_path):
    """vLLM accepts the prefilled assistant turn (continue_final_message) and continues it: every
    output starts with the requested token even when logit_bias pushes another one; echo 100 %."""
    data = gsm_file(tmp_path / "g.jsonl", 2)
    comp40 = tiny_tokenizer.convert_tokens_to_ids("<COMP_40>")
    out = tmp_path / "out"
    extra = ("--ratios", "0.2", "--max-tokens", "8", "--concurrency", "2", "--force-control",
             "--extra-body", json.dumps({"logit_bias": {str(comp40): 100}}))
    assert main(base_args(vllm_server, out, data, *extra)) == 0
    preds = json.loads((out / "gsm8k" / "0.2" / "prediction.json").read_text())
    assert all(r["output"].startswith("<COMP_20>\n<think>\n") for r in preds)
    assert all("<COMP_40>" in r["output"][len("<COMP_20>\n<think>\n"):] for r in preds)  # the model's own part
    metrics = json.loads((out / "gsm8k" / "0.2" / "metrics.json").read_text())
    assert metrics["echo_fidelity"] == 1.0 and metrics["forced_control"] is True
    assert json.loads((out / "eval_config.json").read_text())["force_control"] is True


@pytest.mark.slow
def test_think_tokens_local_tokenizer_matches_server_tokenize(vllm_server, tiny_model_dir, tiny_tokenizer):
    import asyncio

    from extra_cot.eval.client import ThinkCounter
    from extra_cot.think import count_think_tokens

    response = (
        "<COMP_40>\n<think>\nFirst 12 + 30 = 42, then the total costs 42 dollars.</think>\n\n\\boxed{42}"
    )
    root = vllm_server.base_url[: -len("/v1")]

    async def both():
        async with httpx.AsyncClient(timeout=60) as client:
            local = await ThinkCounter(str(tiny_model_dir), root, "local_core_model").count(client, response)
            remote = await ThinkCounter(None, root, "local_core_model").count(client, response)
            return local, remote

    local, remote = asyncio.run(both())
    assert local == remote == (count_think_tokens(response, tiny_tokenizer), True)
    assert local[0] > 5


@pytest.mark.slow
def test_killed_run_resumes_only_missing_items(vllm_server, tmp_path):
    n = 150
    data = gsm_file(tmp_path / "g.jsonl", n)
    out = tmp_path / "out"
    args = base_args(vllm_server, out, data, "--ratios", "0.4", "--max-tokens", "64", "--concurrency", "1")
    partial = out / "gsm8k" / "0.4" / "partial.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "extra_cot.cli", "eval", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.is_file() and len(partial.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
    proc.wait(timeout=30)
    before = partial.read_text().splitlines()
    assert 5 <= len(before) < n, "the run must be killed mid-way"
    assert not (out / "gsm8k" / "0.4" / "prediction.json").exists()

    assert main(args) == 0
    after = partial.read_text().splitlines()
    finished_before = [json.loads(line)["index"] for line in before if line.endswith("}")]
    assert after[: len(finished_before)] == before[: len(finished_before)]  # old lines kept as they were
    indices = [json.loads(line)["index"] for line in after if line.strip().endswith("}")]
    assert sorted(indices) == list(range(n))  # every item once: only the missing ones were requested
    preds = json.loads((out / "gsm8k" / "0.4" / "prediction.json").read_text())
    assert [r["index"] for r in preds] == list(range(n))
    assert json.loads((out / "gsm8k" / "0.4" / "metrics.json").read_text())["n"] == n


@pytest.mark.slow
def test_server_that_dies_reports_its_log(tmp_path):
    from extra_cot.eval.server import VLLMServer

    (tmp_path / "config.json").write_text("{}")  # not a model: vLLM exits during start-up
    with pytest.raises(RuntimeError, match="exited with code .* log tail"):
        VLLMServer(tmp_path, startup_timeout_s=300).start()
