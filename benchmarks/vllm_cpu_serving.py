"""vLLM on this CPU: server start-up and generation throughput per serving setting, same model, same run.

    python benchmarks/vllm_cpu_serving.py --model runs/demo_fp32/models/sft

Each setting is one real ``VLLMServer`` (the demo's and eval's server class) on ``--model``; the
workload is ``--requests`` completions of ``--max-tokens`` tokens each with ``ignore_eos`` (every
setting generates exactly the same number of tokens), ``--concurrency`` at a time, like
``extra-cot eval``. Settings:

* ``default``: vLLM's CPU defaults (a warm-up with graph capture, one core for the model and one
  reserved for the engine's scheduler on 2 cores);
* ``eager``: ``--enforce-eager`` (no graph capture at start-up);
* ``eager+0rsv``: ``--enforce-eager`` and ``VLLM_CPU_NUM_OF_RESERVED_CPU=0`` (the model's threads on
  every core, the scheduler sharing them): what the demo and the study run (``--vllm-args``,
  ``--vllm-reserved-cpus``).

Prints one row per setting and its ratios to the first. Run it alone: other load on 2 cores goes
straight into the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from extra_cot.eval.server import VLLMServer

SETTINGS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "default": ((), {}),
    "eager": (("--enforce-eager",), {}),
    "eager+0rsv": (("--enforce-eager",), {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}),
}
PROMPT = ("Please reason step by step, and put your final answer within \\boxed{}.\n"
          "Mia has {n} apples. She buys 3 bags with 4 apples in each. How many apples does she have now?")


def _complete(base_url: str, i: int, max_tokens: int) -> None:
    body = {"model": "local_core_model", "prompt": PROMPT.replace("{n}", str(i)), "max_tokens": max_tokens,
            "temperature": 0.6, "ignore_eos": True}
    req = urllib.request.Request(f"{base_url}/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        out = json.load(resp)
    if out["usage"]["completion_tokens"] != max_tokens:
        raise RuntimeError(f"request {i}: {out['usage']['completion_tokens']} tokens, expected {max_tokens}")


def run_one(args: argparse.Namespace, name: str, log: Path) -> dict:
    extra, env = SETTINGS[name]
    load0 = os.getloadavg()[0]
    server = VLLMServer(args.model, max_model_len=2048, extra_args=extra, env=env, log_path=log)
    started = time.monotonic()
    with server:
        startup = time.monotonic() - started
        _complete(server.base_url, -1, 8)  # the first request's one-off cost stays out of the rate
        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda i: _complete(server.base_url, i, args.max_tokens), range(args.requests)))
        gen = time.monotonic() - started
    tokens = args.requests * args.max_tokens
    return {"setting": name, "startup_s": round(startup, 1), "generate_s": round(gen, 1),
            "tokens_per_s": round(tokens / gen, 1), "load_start": round(load0, 2),
            "load_end": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model folder to serve")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help=f"comma list of {', '.join(SETTINGS)}; the first is the baseline")
    p.add_argument("--requests", type=int, default=96, help="completions per setting")
    p.add_argument("--max-tokens", type=int, default=96, help="tokens generated per completion (ignore_eos)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (extra-cot eval's default)")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vllm_cpu_") as tmp:
        for name in args.settings.split(","):
            rows.append(run_one(args, name, Path(tmp) / f"{name}.log"))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    b = rows[0]
    print(f"{'setting':>11} | {'start-up s':>10} | {'ratio':>5} | {'tokens/s':>8} | {'ratio':>5} | load start/end")
    for r in rows:
        print(f"{r['setting']:>11} | {r['startup_s']:>10.1f} | {r['startup_s'] / b['startup_s']:>5.2f} | "
              f"{r['tokens_per_s']:>8.1f} | {r['tokens_per_s'] / b['tokens_per_s']:>5.2f} | "
              f"{r['load_start']}/{r['load_end']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
