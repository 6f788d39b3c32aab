"""Served budgets against a REAL vLLM server (the session fixture ``vllm_server``, started with
``reasoning_config_args()``): ``extra-cot eval --think-budget`` and the ``comp_ratio`` chat-template
variable an OpenAI client sets per request.

How the budget is made visible on a random tiny model: ``--force-control`` prefills
``<COMP_20>\\n<think>\\n`` and ``allowed_token_ids`` keeps the model to the ten digit tokens, so it
never writes ``</think>`` itself (without a budget no block closes) and its text re-tokenizes into
at most as many tokens as it generated (BPE merges digit runs): a block closed by the server holds
at most the budget, with no slack.
"""

from __future__ import annotations

import json

import httpx
import pytest

from extra_cot.eval.cli import main
from extra_cot.prompt import build_messages, forced_prefix
from extra_cot.think import THINK_CLOSE, think_span

from .test_eval_vllm import base_args, gsm_file

QUESTION = "Tom has 3 apples and buys 2 more. How many apples now?"
BUDGET = 6


def digit_ids(tok) -> list[int]:
    return [tok.convert_tokens_to_ids(str(d)) for d in range(10)]


def _eval(server, out, data, tok, *extra) -> int:
    body = json.dumps({"allowed_token_ids": digit_ids(tok)})
    return main(base_args(server, out, data, "--ratios", "0.2", "--force-control", "--max-tokens", "24",
                          "--concurrency", "3", "--temperature", "1.0", "--extra-body", body, *extra))


def _run(out, name="0.2"):
    preds = json.loads((out / "gsm8k" / name / "prediction.json").read_text())
    metrics = json.loads((out / "gsm8k" / name / "metrics.json").read_text())
    return preds, metrics


def test_help_lists_think_budget_and_the_server_flag(capsys):
    from extra_cot.eval.server import REASONING_CONFIG, reasoning_config_args

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--think-budget THINK_BUDGET cap on think tokens per response, sent as vLLM's thinking_token_budget" in text
    assert f"--reasoning-config '{json.dumps(REASONING_CONFIG)}'" in text
    assert reasoning_config_args() == ("--reasoning-config", '{"reasoning_start_str": "<think>", "reasoning_end_str": "</think>"}')


def test_budget_goes_into_the_request_only_when_set():
    from extra_cot.eval.client import SamplingOptions

    assert "thinking_token_budget" not in SamplingOptions().body("m", [], 0)
    assert SamplingOptions(think_budget=0).body("m", [], 0)["thinking_token_budget"] == 0
    assert SamplingOptions(think_budget=512).body("m", [], 3)["thinking_token_budget"] == 512


def test_negative_budget_and_mixed_runs_are_refused(tmp_path, capsys):
    from extra_cot.eval.runner import check_budget, run_budget

    data = gsm_file(tmp_path / "g.jsonl", 1)
    assert main(["--output_dir", str(tmp_path / "o"), "--dataset", f"gsm8k={data}", "--think-budget", "-1"]) == 2
    assert "--think-budget must be >= 0" in capsys.readouterr().err
    done = {0: {"index": 0, "records": [], "think_budget": 64}, 1: {"index": 1, "records": []}}
    with pytest.raises(ValueError, match=r"different --think-budget values \[64, None\]"):
        run_budget(done)
    assert run_budget({}) is None and run_budget({1: done[1]}) is None  # logs written before budgets: no cap
    check_budget({0: done[0]}, 64, tmp_path / "p.jsonl")
    check_budget({}, 8, tmp_path / "p.jsonl")  # a fresh run takes any budget
    with pytest.raises(ValueError, match="p.jsonl: its 1 finished items were requested with --think-budget 64, "
                       "this run asks None"):
        check_budget({0: done[0]}, None, tmp_path / "p.jsonl")


@pytest.mark.slow
def test_think_budget_closes_every_block_within_the_budget(vllm_server, tiny_tokenizer, tmp_path):
    data = gsm_file(tmp_path / "g.jsonl", 3)
    assert _eval(vllm_server, tmp_path / "free", data, tiny_tokenizer) == 0
    free, free_metrics = _run(tmp_path / "free")
    assert not any(THINK_CLOSE in r["output"] for r in free)  # the model never closes by itself
    assert free_metrics["think_budget"] is None

    capped_out = tmp_path / "capped"
    assert _eval(vllm_server, capped_out, data, tiny_tokenizer, "--think-budget", str(BUDGET)) == 0
    capped, metrics = _run(capped_out)
    for r in capped:
        span = think_span(r["output"])
        assert span.closed, r["output"]
        assert 0 < len(tiny_tokenizer.encode(span.block, add_special_tokens=False)) <= BUDGET, r["output"]
    assert metrics["think_budget"] == BUDGET
    assert json.loads((capped_out / "eval_config.json").read_text())["sampling"]["think_budget"] == BUDGET
    # resuming the run with another budget would mix two settings in one run: refused
    assert _eval(vllm_server, capped_out, data, tiny_tokenizer, "--think-budget", str(BUDGET + 1)) == 2


@pytest.mark.slow
def test_s1_mode_cuts_at_the_budget_then_answers_after_the_cue(vllm_server, tiny_tokenizer, tmp_path):
    """s1-style budget forcing against the real server: the think phase stops at the budget
    (``max_tokens``), the block is closed by the client, and the answer phase continues the turn
    after the cue for at most ``--answer-max-tokens`` tokens."""
    from extra_cot.eval.client import DEFAULT_ANSWER_CUE

    data = gsm_file(tmp_path / "g.jsonl", 3)
    out = tmp_path / "s1"
    assert _eval(vllm_server, out, data, tiny_tokenizer, "--think-budget", str(BUDGET), "--think-budget-mode", "s1",
                 "--answer-max-tokens", "4") == 0
    preds, metrics = _run(out)
    assert len(preds) == 3 and (metrics["think_budget"], metrics["think_budget_mode"]) == (BUDGET, "s1")
    for r in preds:
        span = think_span(r["output"])
        assert span.closed and r["output"].startswith(forced_prefix(0.2)), r["output"]
        assert 0 < len(tiny_tokenizer.encode(span.block, add_special_tokens=False)) <= BUDGET, r["output"]
        assert span.answer.startswith(DEFAULT_ANSWER_CUE), r["output"]
        tail = span.answer[len(DEFAULT_ANSWER_CUE):]
        assert tail.isdigit() and 0 < len(tiny_tokenizer.encode(tail, add_special_tokens=False)) <= 4, r["output"]


@pytest.mark.slow
def test_think_budget_counts_exactly_the_think_tokens(vllm_server, tiny_tokenizer):
    """vLLM's own count, from the returned token ids: the think tokens after ``<think>`` (the
    prefilled newline included) are exactly the budget when the model would go on."""
    messages = [*build_messages(QUESTION, 0.2), {"role": "assistant", "content": forced_prefix(0.2)}]
    body = {"model": vllm_server.served_model_name, "messages": messages, "max_tokens": 24, "n": 3,
            "continue_final_message": True, "add_generation_prompt": False, "skip_special_tokens": False,
            "allowed_token_ids": digit_ids(tiny_tokenizer), "return_token_ids": True,
            "thinking_token_budget": BUDGET}
    data = httpx.post(f"{vllm_server.base_url}/chat/completions", json=body, timeout=120).json()
    prompt_ids = data["prompt_token_ids"]
    in_prompt = prompt_ids[::-1].index(tiny_tokenizer.convert_tokens_to_ids("<think>"))  # the prefilled "\n"
    assert in_prompt == 1
    end = tiny_tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    for choice in data["choices"]:
        assert in_prompt + choice["token_ids"].index(end) == BUDGET


@pytest.mark.slow
def test_comp_ratio_chat_template_kwarg_through_the_openai_client(vllm_server, tiny_tokenizer):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="none")

    def prompt_ids(**kwargs) -> list[int]:
        extra = {"return_token_ids": True, **({"chat_template_kwargs": kwargs} if kwargs else {})}
        resp = client.chat.completions.create(model=vllm_server.served_model_name, max_tokens=1,
                                              messages=build_messages(QUESTION), extra_body=extra)
        return resp.model_extra["prompt_token_ids"]

    def expected(control) -> list[int]:
        return tiny_tokenizer.apply_chat_template(build_messages(QUESTION, control), add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"]

    comp40 = tiny_tokenizer.convert_tokens_to_ids("<COMP_40>")
    with_kwarg = prompt_ids(comp_ratio=0.4)
    assert with_kwarg == expected(0.4) and with_kwarg.count(comp40) == 1
    assert prompt_ids() == expected(None)  # no variable: the prompt as before
    assert prompt_ids(comp_ratio="policy") == expected("policy")
    # vLLM 0.28 drops a chat_template_kwargs value "auto" as "unset" (renderers/params.py
    # merge_kwargs, unset_values=(None, "auto")): the template never sees it (docs/hosts.md)
    assert prompt_ids(comp_ratio="auto") == expected(None)
    with pytest.raises(openai.BadRequestError) as err:
        prompt_ids(comp_ratio=0.3)
    assert err.value.status_code == 400
    assert "comp_ratio must be a ratio 0.2, 0.4, 0.6, 0.8, 1.0" in str(err.value) and "got 0.3" in str(err.value)
