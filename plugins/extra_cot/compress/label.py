"""``extra-cot label``: ask an OpenAI-compatible teacher (vLLM, or a hosted model) which parts
of each CoT to keep; writes ``{question, cot, keep_spans}`` rows for ``train-compressor``.

Examples::

    # a local vLLM server (python -m vllm.entrypoints.openai.api_server --model M --port 8000)
    extra-cot label --input traces.jsonl --output out/labels.jsonl --base-url http://127.0.0.1:8000/v1 \\
        --model local_core_model
    # a hosted teacher (the paper used GPT-4o at temperature 0)
    OPENAI_API_KEY=... extra-cot label --input gsm8k_train.jsonl --input-format gsm8k \\
        --output out/labels.jsonl --base-url https://api.openai.com/v1 --model gpt-4o --workers 8

Formulas are masked as ``[MATH_k]``, CoTs are cut into ~512-token chunks (``--tokenizer``: the
student's tokenizer; default SmolLM2's). A malformed answer (no JSON, a span not in the chunk, a
cut placeholder) is retried ``--retries`` times, then the row is skipped and the reason logged to
OUT.skipped.jsonl; the run never crashes on teacher output.

Nothing is lost on an outage: a transient error (connection refused or reset, timeout, HTTP 408,
429 or 5xx) is retried up to ``--attempts`` tries per request, waiting ``--backoff-s`` seconds
and twice as long before each next one (with ±50 % jitter); a row that still fails, or meets a
permanent error (another HTTP 4xx such as 400 for that row, a reply that is not a chat
completion), is recorded as failed in OUT.failed.jsonl with the reason, not as skipped. After
``--max-consecutive-failures`` failed rows in a row (the teacher is down) the rest are not sent
and are recorded as failed too. The exit status is then 1 with the count, and a rerun of the
same command retries exactly the failed rows (rows in OUT or in the skip log are done).
Resumable.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from extra_cot.cliargs import non_negative_int
from extra_cot.compress import teacher
from extra_cot.compress.jsonl import prepare_append, run_command
from extra_cot.compress.pipeline import READERS, Source
from extra_cot.compress.rows import input_key
from extra_cot.eval.client import _retryable  # one rule for which HTTP statuses are worth retrying
from extra_cot.fileio import Appender, atomic_write_json, read_jsonl_inputs, refuse_overlap

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelOptions:
    """Teacher client options; temperature 0 as in the paper (docs/method.md)."""

    base_url: str
    model: str
    api_key: str = "EMPTY"
    temperature: float = 0.0
    max_tokens: int = 1024
    retries: int = 2
    timeout_s: float = 120.0
    attempts: int = 6
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url {self.base_url!r} must be http(s)://host:port/v1")
        if self.retries < 0 or self.max_tokens < 1:
            raise ValueError("--retries must be >= 0 and --max-tokens >= 1")
        if self.attempts < 1 or self.backoff_s < 0:
            raise ValueError(f"--attempts must be >= 1 and --backoff-s >= 0, got {self.attempts} and {self.backoff_s}")


class TeacherError(RuntimeError):
    """A request that got no chat completion; ``transient``: worth retrying (outage, overload)."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


def chat(options: LabelOptions, msgs: list[dict]) -> str:
    """One chat completion; returns the reply text or raises :class:`TeacherError`."""
    body = json.dumps({"model": options.model, "messages": msgs, "temperature": options.temperature,
                       "max_tokens": options.max_tokens}).encode("utf-8")
    req = urllib.request.Request(f"{options.base_url.rstrip('/')}/chat/completions", data=body,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {options.api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=options.timeout_s) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace") if exc.fp is not None else ""
        raise TeacherError(f"HTTP {exc.code}: {detail}", _retryable(exc.code, failover=False)) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
        raise TeacherError(f"{type(exc).__name__}: {exc}", transient=True) from None
    try:
        return json.loads(raw.decode("utf-8"))["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise TeacherError(f"not a chat completion ({type(exc).__name__}: {exc}): {raw[:120]!r}", False) from None


def chat_with_backoff(options: LabelOptions, msgs: list[dict]) -> str:
    """:func:`chat`, retrying transient errors ``options.attempts`` times in all with exponential
    backoff (``backoff_s``, doubling, ±50 % jitter so that workers do not retry in step)."""
    for attempt in range(options.attempts):
        try:
            return chat(options, msgs)
        except TeacherError as exc:
            if not exc.transient or attempt + 1 == options.attempts:
                raise
            delay = options.backoff_s * 2**attempt * (0.5 + random.random())
            logger.warning("teacher request failed (%s); try %d/%d in %.1f s", exc, attempt + 2, options.attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def label_chunk(options: LabelOptions, question: str, text: str) -> tuple[list[tuple[int, int]] | None, str | None]:
    """Keep-spans of one chunk, or ``(None, reason)`` when every answer was malformed; a request
    that fails after its backoff raises :class:`TeacherError`."""
    reason = None
    for attempt in range(options.retries + 1):
        reply = chat_with_backoff(options, teacher.messages(question, text))
        try:
            return teacher.parse_keep(reply, text), None
        except ValueError as exc:
            reason = f"malformed: {exc}"
            logger.info("attempt %d: %s (reply starts %r)", attempt + 1, reason, reply[:80])
    return None, reason


def label_source(options: LabelOptions, src: Source, count) -> tuple[str, list[list[int]] | None, int, str | None]:
    """``(outcome, keep_spans in the CoT, chunks, reason)`` for one source; outcome is
    ``labelled``, ``skipped`` (malformed answers) or ``failed`` (the teacher could not answer)."""
    masked = teacher.mask_formulas(src.cot)
    spans, chunks = [], teacher.chunk(masked.text, count)
    for cs, ce in chunks:
        try:
            local, reason = label_chunk(options, src.question, masked.text[cs:ce])
        except TeacherError as exc:
            return "failed", None, len(chunks), f"{'teacher_down' if exc.transient else 'teacher_error'}: {exc}"
        if local is None:
            return "skipped", None, len(chunks), reason
        spans += [teacher.to_original(masked, cs + a, cs + b) for a, b in local]
    return "labelled", teacher.snap_to_units(src.cot, spans), len(chunks), None


def _done_keys(out: Path, skip_path: Path) -> set[str]:
    """Rows already finished: labelled, or skipped for a reason a rerun would meet again. Skips of
    HTTP errors written before failed rows had their own file (``http_error``) are retried."""
    done = prepare_append(out)
    prepare_append(skip_path)  # cuts a torn last line
    if skip_path.exists():
        for line in skip_path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row and not str(row.get("reason", "")).startswith("http_error"):
                done.add(row.get("key"))
    return done


def run(args) -> Counter:
    from tqdm import tqdm

    from extra_cot.compress.models import load_tokenizer, make_counter

    options = LabelOptions(args.base_url, args.model, os.environ.get(args.api_key_env, "EMPTY"), args.temperature,
                           args.max_tokens, args.retries, args.timeout_s, args.attempts, args.backoff_s)
    if args.max_consecutive_failures < 1:
        raise ValueError(f"--max-consecutive-failures must be >= 1, got {args.max_consecutive_failures}")
    out = Path(args.output)
    skip_path, fail_path = (out.with_name(out.name + suffix) for suffix in (".skipped.jsonl", ".failed.jsonl"))
    config_path = out.with_name(out.name + ".config.json")
    refuse_overlap(args.input, [out, skip_path, fail_path, config_path], "--output")
    # Read and check the whole input (a bad line or field raises) and load the tokenizer before
    # anything is written: a bad input leaves no config, and no earlier run's failed log deleted.
    rows = list(read_jsonl_inputs(args.input))[: args.limit]
    count = make_counter(load_tokenizer(args.tokenizer))
    done = _done_keys(out, skip_path)
    todo, stats = [], Counter()
    for path, n, row in rows:
        key = input_key(row)
        if key in done:
            stats["already_done"] += 1
            continue
        src, reason = READERS[args.input_format](row, f"{path}:{n}", args.strip_annotations)
        todo.append((f"{path}:{n}", n, key, src, reason))
    fail_path.unlink(missing_ok=True)  # this run's failures only; the rows themselves are retried below
    atomic_write_json(config_path, {"args": vars(args), "options": asdict(options) | {"api_key": "<hidden>"}})
    down, streak, lock = threading.Event(), [0], threading.Lock()

    def work(item):
        *_, src, reason = item
        if src is None:
            return item, "skipped", None, 0, reason
        if down.is_set():
            return item, "failed", None, 0, f"not_sent: {args.max_consecutive_failures} rows in a row failed before"
        outcome = label_source(options, src, count)
        with lock:  # consecutive failed rows, in the order they finish
            streak[0] = streak[0] + 1 if outcome[0] == "failed" else 0
            if streak[0] >= args.max_consecutive_failures:
                down.set()
        return (item, *outcome)

    with Appender(out) as good, Appender(skip_path) as bad, Appender(fail_path) as failed, \
            ThreadPoolExecutor(args.workers) as pool:
        for (where, n, key, src, _), outcome, spans, chunks, reason in tqdm(pool.map(work, todo), total=len(todo),
                                                                            desc="label"):
            if outcome == "labelled":
                good.write({"key": key, "line": n, "question": src.question, "cot": src.cot, "keep_spans": spans,
                            "chunks": chunks, "teacher": options.model})
                stats["labelled"] += 1
                continue
            logger.warning("%s %s: %s", where, outcome, reason)
            (bad if outcome == "skipped" else failed).write({"key": key, "line": n, "reason": reason})
            stats[f"{outcome}:{(reason or '').split(':')[0]}"] += 1
    return stats


def _failed(stats: Counter) -> int:
    return sum(n for name, n in stats.items() if name.startswith("failed:"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extra-cot label", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="JSONL: a file, a directory of *.jsonl parts or a glob")
    p.add_argument("--output", required=True)
    p.add_argument("--input-format", choices=sorted(READERS), default="responses")
    p.add_argument("--strip-annotations", action="store_true")
    p.add_argument("--limit", type=non_negative_int, default=None, help="read at most this many input rows")
    t = p.add_argument_group("teacher")
    t.add_argument("--base-url", required=True, help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1")
    t.add_argument("--model", required=True, help="served model name")
    t.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the API key (default EMPTY)")
    t.add_argument("--temperature", type=float, default=0.0)
    t.add_argument("--max-tokens", type=int, default=1024)
    t.add_argument("--retries", type=int, default=2, help="new requests after a malformed answer, before the row is skipped")
    t.add_argument("--timeout-s", type=float, default=120.0, help="seconds per request")
    t.add_argument("--attempts", type=int, default=6,
                   help="tries per request on a transient error (connection, timeout, HTTP 408/429/5xx); "
                        "default 6: about 31 s of backoff in all")
    t.add_argument("--backoff-s", type=float, default=1.0,
                   help="wait before the second try, doubling before each next one (±50%% jitter)")
    t.add_argument("--max-consecutive-failures", type=int, default=20,
                   help="after this many failed rows in a row the teacher is taken as down: the rest are "
                        "recorded as failed without being sent (a rerun retries them)")
    t.add_argument("--workers", type=int, default=4, help="concurrent rows")
    p.add_argument("--tokenizer", default=None, help="tokenizer for chunk sizes: folder or hub id ORG/NAME[@REV] (default: SmolLM2's)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every row was labelled or skipped, 1 when some failed (rerun to retry them), 2
    on an input error."""
    result: list[Counter] = []
    code = run_command(build_parser(), lambda args: result.append(run(args)) or result[0], argv)
    failed = _failed(result[0]) if result else 0
    if code == 0 and failed:
        logger.error("%d row(s) failed (the teacher could not answer; reasons in the .failed.jsonl beside "
                     "--output): rerun the same command to retry them", failed)
        return 1
    return code
