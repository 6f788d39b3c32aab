"""`extra-cot eval` against a fake OpenAI server (httpx ``MockTransport``): the explicit sampler in
every request body, ``eval_config.json``, ``--force-control`` prefill, echo fidelity, s1-style budget
forcing (``--think-budget-mode s1``), and the stop on a reasoning-parser server. The whole CLI runs; only the network is replaced."""

from __future__ import annotations

import json

import httpx
import pytest

from extra_cot.eval import client as eval_client
from extra_cot.eval import runner as eval_runner
from extra_cot.eval.cli import main

SAMPLER = {"temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens", "n", "skip_special_tokens"}


def _gsm(path, n=3):
    rows = [{"question": f"Tom has {i} apples and buys 2 more. How many?", "answer": f"#### {i + 2}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def fake_server(monkeypatch):
    """Route the eval client's HTTP to ``handler``; return (bodies seen, settings to change the answer)."""
    bodies: list[dict] = []
    settings = {"content": "<COMP_40>\n<think>\nTwo more.</think>\n\n\\boxed{2}", "message_extra": {}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "local_core_model"}]})
        if request.url.path.endswith("/tokenize"):
            return httpx.Response(200, json={"count": len(json.loads(request.content)["prompt"].split())})
        body = json.loads(request.content)
        bodies.append(body)
        content = settings["content"](body) if callable(settings["content"]) else settings["content"]
        message = {"role": "assistant", "content": content, **settings["message_extra"]}
        return httpx.Response(200, json={"choices": [{"index": i, "message": message} for i in range(body["n"])]})

    transport = httpx.MockTransport(handler)
    real_async_client = httpx.AsyncClient
    monkeypatch.setattr(eval_runner.httpx, "AsyncClient", lambda *a, **k: real_async_client(*a, transport=transport, **k))
    monkeypatch.setattr(eval_client.httpx, "get", lambda url, **k: httpx.Client(transport=transport).get(url))
    return bodies, settings


def test_every_request_carries_the_explicit_sampler(fake_server, tmp_path):
    bodies, _ = fake_server
    out = tmp_path / "out"
    rc = main(["--output_dir", str(out), "--dataset", f"g={_gsm(tmp_path / 'g.jsonl')}", "--ratios", "0.4,1.0,policy,base",
               "--n-samples", "2", "--max-tokens", "64"])
    assert rc == 0
    assert len(bodies) == 3 * 4
    for body in bodies:
        assert SAMPLER <= set(body), sorted(body)
        assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (-1, 0.0, 1.0)
        assert "continue_final_message" not in body and body["messages"][-1]["role"] == "user"
    saved = json.loads((out / "eval_config.json").read_text())["sampling"]
    assert {k: saved[k] for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")} == {
        "temperature": 0.7, "top_p": 0.9, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}
    # every answer starts with <COMP_40>: echo fidelity 1 at 0.4, 0 at 1.0, none for policy/base
    metrics = {r: json.loads((out / "g" / r / "metrics.json").read_text()) for r in ("0.4", "1.0", "policy", "base")}
    assert metrics["0.4"]["echo_fidelity"] == 1.0 and metrics["1.0"]["echo_fidelity"] == 0.0
    assert metrics["policy"]["echo_fidelity"] is None and metrics["base"]["echo_fidelity"] is None
    assert metrics["policy"]["chosen_ratio_distribution"] == {"<COMP_40>": 1.0}
    summary = (out / "summary.md").read_text()
    assert "| echo |" in summary and "| 100% |" in summary and "chosen by the model: <COMP_40> 100%" in summary


def test_user_values_win_and_reach_the_body(fake_server, tmp_path):
    bodies, _ = fake_server
    rc = main(["--output_dir", str(tmp_path / "o"), "--dataset", f"g={_gsm(tmp_path / 'g.jsonl', 1)}", "--ratios", "0.2",
               "--top-k", "20", "--min-p", "0.05", "--repetition-penalty", "1.1"])
    assert rc == 0
    assert (bodies[0]["top_k"], bodies[0]["min_p"], bodies[0]["repetition_penalty"]) == (20, 0.05, 1.1)


def test_force_control_prefills_fixed_ratios_only(fake_server, tmp_path):
    bodies, settings = fake_server
    settings["content"] = "Two more.</think>\n\n\\boxed{2}"  # the continuation after the prefill
    out = tmp_path / "o"
    rc = main(["--output_dir", str(out), "--dataset", f"g={_gsm(tmp_path / 'g.jsonl', 2)}", "--ratios", "0.2,policy",
               "--force-control", "--tokenizer", ""])
    assert rc == 0
    fixed = [b for b in bodies if "<COMP_20>" in b["messages"][1]["content"]]
    policy = [b for b in bodies if b not in fixed]
    assert len(fixed) == len(policy) == 2
    for body in fixed:
        assert body["messages"][-1] == {"role": "assistant", "content": "<COMP_20>\n<think>\n"}
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    for body in policy:
        assert body["messages"][-1]["role"] == "user" and "continue_final_message" not in body
    pred = json.loads((out / "g" / "0.2" / "prediction.json").read_text())
    assert all(r["output"].startswith("<COMP_20>\n<think>\nTwo more.") and r["think_tokens"] > 0 for r in pred)
    metrics = json.loads((out / "g" / "0.2" / "metrics.json").read_text())
    assert metrics["echo_fidelity"] == 1.0 and metrics["forced_control"] is True
    assert "(forced)" in (out / "summary.md").read_text()


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_parser_server_stops_the_sweep(fake_server, tmp_path, capsys, field):
    _, settings = fake_server
    settings["content"] = "\\boxed{2}"
    settings["message_extra"] = {field: "Two more."}
    rc = main(["--output_dir", str(tmp_path / "o"), "--dataset", f"g={_gsm(tmp_path / 'g.jsonl', 2)}", "--ratios", "0.2"])
    assert rc == 1
    err = capsys.readouterr().err
    assert field in err and "without --reasoning-parser" in err
    assert not (tmp_path / "o" / "g" / "0.2" / "metrics.json").exists()


def test_s1_budget_forcing_cuts_closes_cues_and_answers(fake_server, tmp_path, capsys):
    bodies, settings = fake_server
    cue = "The answer is \\boxed{"
    # the think phase goes on past the budget (the server stops it at max_tokens); the answer phase writes the box
    settings["content"] = lambda body: "5}." if body["messages"][-1]["content"].endswith(cue) else "Two more, and\n"
    out = tmp_path / "o"
    argv = ["--output_dir", str(out), "--dataset", f"g={_gsm(tmp_path / 'g.jsonl', 4)}", "--ratios", "base",
            "--n-samples", "2", "--think-budget", "5", "--tokenizer", ""]
    assert main([*argv, "--think-budget-mode", "s1"]) == 0
    think = [b for b in bodies if b["messages"][-1]["content"] == "<think>\n"]
    answer = [b for b in bodies if b not in think]
    assert len(think) == 4 and len(answer) == 8  # one answer request per sample
    for body in think:
        assert (body["max_tokens"], body["stop"], body["n"]) == (5, ["</think>"], 2)
        assert body["continue_final_message"] is True and "thinking_token_budget" not in body
    for body in answer:
        assert body["messages"][-1] == {"role": "assistant", "content": "<think>\nTwo more, and</think>\n\n" + cue}
        assert (body["max_tokens"], body["n"], body["continue_final_message"]) == (16, 1, True)
        assert "stop" not in body and "thinking_token_budget" not in body
    pred = json.loads((out / "g" / "base" / "prediction.json").read_text())
    assert len(pred) == 8 and all(r["output"] == "<think>\nTwo more, and</think>\n\n" + cue + "5}." for r in pred)
    assert [r["correct"] for r in pred if r["sample"] == 0] == [False, False, False, True]  # gold i + 2: 5 at i = 3
    assert all(r["think_tokens"] == 3 for r in pred)  # the server's /tokenize of "Two more, and"; the box line is free
    metrics = json.loads((out / "g" / "base" / "metrics.json").read_text())
    assert (metrics["think_budget"], metrics["think_budget_mode"]) == (5, "s1")
    # the same budget enforced by the server is another setting: resuming into this run is refused
    assert main([*argv, "--think-budget-mode", "server"]) == 2
    assert "--think-budget-mode s1, this run asks server" in capsys.readouterr().err


def test_server_budget_mode_sends_the_budget_and_s1_needs_a_positive_one(fake_server, tmp_path, capsys):
    bodies, _ = fake_server
    data = f"g={_gsm(tmp_path / 'g.jsonl', 1)}"
    assert main(["--output_dir", str(tmp_path / "a"), "--dataset", data, "--ratios", "base", "--think-budget", "7"]) == 0
    assert bodies[0]["thinking_token_budget"] == 7 and "stop" not in bodies[0] and len(bodies) == 1
    assert main(["--output_dir", str(tmp_path / "b"), "--dataset", data, "--think-budget", "0",
                 "--think-budget-mode", "s1"]) == 2
    assert "--think-budget-mode s1 needs --think-budget >= 1" in capsys.readouterr().err
