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
cut placeholder, an HTTP error) is retried ``--retries`` times, then the row is skipped and the
reason logged to OUT.skipped.jsonl; the run never crashes on teacher output. Resumable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url {self.base_url!r} must be http(s)://host:port/v1")
        if self.retries < 0 or self.max_tokens < 1:
            raise ValueError("--retries must be >= 0 and --max-tokens >= 1")


def chat(options: LabelOptions, msgs: list[dict]) -> str:
    """One chat completion; returns the reply text (raises on HTTP/format errors)."""
    body = json.dumps({"model": options.model, "messages": msgs, "temperature": options.temperature,
                       "max_tokens": options.max_tokens}).encode("utf-8")
    req = urllib.request.Request(f"{options.base_url.rstrip('/')}/chat/completions", data=body,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {options.api_key}"})
    with urllib.request.urlopen(req, timeout=options.timeout_s) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    return data["choices"][0]["message"]["content"] or ""


def label_chunk(options: LabelOptions, question: str, text: str) -> tuple[list[tuple[int, int]] | None, str | None]:
    """Keep-spans of one chunk, or ``(None, reason)`` after the retries are spent."""
    reason = None
    for attempt in range(options.retries + 1):
        try:
            reply = chat(options, teacher.messages(question, text))
        except (urllib.error.URLError, OSError, KeyError, IndexError, ValueError) as exc:
            reason = f"http_error: {exc}"
        else:
            try:
                return teacher.parse_keep(reply, text), None
            except ValueError as exc:
                reason = f"malformed: {exc}"
                logger.info("attempt %d: %s (reply starts %r)", attempt + 1, reason, reply[:80])
    return None, reason


def label_source(options: LabelOptions, src: Source, count) -> tuple[list[list[int]] | None, int, str | None]:
    """``(keep_spans in the CoT, chunks, skip reason)`` for one source."""
    masked = teacher.mask_formulas(src.cot)
    spans, chunks = [], teacher.chunk(masked.text, count)
    for cs, ce in chunks:
        local, reason = label_chunk(options, src.question, masked.text[cs:ce])
        if local is None:
            return None, len(chunks), reason
        spans += [teacher.to_original(masked, cs + a, cs + b) for a, b in local]
    return teacher.snap_to_units(src.cot, spans), len(chunks), None


def run(args) -> Counter:
    from tqdm import tqdm

    from extra_cot.compress.models import load_tokenizer, make_counter

    options = LabelOptions(args.base_url, args.model, os.environ.get(args.api_key_env, "EMPTY"),
                           args.temperature, args.max_tokens, args.retries, args.timeout_s)
    out = Path(args.output)
    skip_path = out.with_name(out.name + ".skipped.jsonl")
    refuse_overlap(args.input, [out, skip_path, out.with_name(out.name + ".config.json")], "--output")
    done = prepare_append(out) | prepare_append(skip_path)
    atomic_write_json(out.with_name(out.name + ".config.json"),
                      {"args": vars(args), "options": asdict(options) | {"api_key": "<hidden>"}})
    count = make_counter(load_tokenizer(args.tokenizer))
    todo, stats = [], Counter()
    for path, n, row in list(read_jsonl_inputs(args.input))[: args.limit]:
        key = input_key(row)
        if key in done:
            stats["already_done"] += 1
            continue
        src, reason = READERS[args.input_format](row, f"{path}:{n}", args.strip_annotations)
        todo.append((f"{path}:{n}", n, key, src, reason))

    def work(item):
        *_, src, reason = item
        if src is None:
            return item, None, 0, reason
        return (item, *label_source(options, src, count))

    with Appender(out) as good, Appender(skip_path) as bad, ThreadPoolExecutor(args.workers) as pool:
        for (where, n, key, src, _), spans, chunks, reason in tqdm(pool.map(work, todo), total=len(todo), desc="label"):
            if spans is None:
                logger.warning("%s skipped: %s", where, reason)
                bad.write({"key": key, "line": n, "reason": reason})
                stats[f"skipped:{(reason or '').split(':')[0]}"] += 1
                continue
            good.write({"key": key, "line": n, "question": src.question, "cot": src.cot, "keep_spans": spans,
                        "chunks": chunks, "teacher": options.model})
            stats["labelled"] += 1
    return stats


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
    t.add_argument("--retries", type=int, default=2)
    t.add_argument("--timeout-s", type=float, default=120.0)
    t.add_argument("--workers", type=int, default=4, help="concurrent rows")
    p.add_argument("--tokenizer", default=None, help="tokenizer for chunk sizes: folder or hub id ORG/NAME[@REV] (default: SmolLM2's)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), run, argv)
