"""Answer extraction and equivalence: the one grader shared by evaluation and the RL reward.

Why not the authors' regex: it never matches ``\\boxed{42}`` and cannot follow nested braces
(docs/method.md, "Evaluation"). Here extraction is a brace-matching scan for the *last*
``\\boxed``/``\\fbox``, then GSM8K ``#### x``, then "The answer is x", in the part of the response
after its first ``</think>`` (``extra_cot.think.split_think``): a box inside the reasoning is not
an answer.

Equivalence is a cheap exact/numeric path first, then math-verify for LaTeX forms. Safety:

* One deadline per grading call (:data:`GRADE_DEADLINE_S`, env ``EXTRA_COT_GRADE_DEADLINE_S``, or
  ``deadline_s=`` per call) over extraction, the exact path and math-verify together: a call past
  it is graded wrong (no answer), and logged with the step it was in. It is a clock, not a signal,
  so it works in any thread (verl's reward workers and eval's grading threads are not the main
  thread). Extraction checks it between steps; each step is linear in the scanned text (at most
  :data:`MAX_SCAN_CHARS` characters: every pattern here is possessive or atomic where a run could
  otherwise be re-scanned, so no step backtracks), so a call overruns by at most one step
  (``benchmarks/grader_bench.py --hostile``). Not charged: waiting for a free math-verify worker
  and starting one (a cold start takes ~1 s; charging it would make the first symbolic pair of a
  process depend on that).
* math-verify's own timeouts use ``signal.alarm`` and fail off the main thread (docs/hosts.md), so
  they are switched off; instead inputs that can make sympy run for minutes (power towers, huge
  exponents or digit runs, deep nesting, long strings) never reach it, and every math-verify call
  runs in a small pool of worker processes: a call past the deadline kills its worker (no CPU
  keeps burning) and counts as "not equivalent".
* Only LaTeX extraction is used (latex2sympy is a parser); sympy's ``parse_expr`` (which uses
  ``eval``) is never given model text.
* No public function raises on an input: an unexpected error on one pair is logged with the pair
  and graded "not equivalent". The one exception is :class:`GraderUnavailableError`: when a
  math-verify worker cannot start at all, every symbolic pair would be graded wrong (in RL: silently
  lower rewards), so grading stops with the cause and the fix instead.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction

logger = logging.getLogger(__name__)

#: Environment variable that sets :data:`GRADE_DEADLINE_S` for a process (seconds, > 0).
DEADLINE_ENV = "EXTRA_COT_GRADE_DEADLINE_S"
#: Default deadline of one grading call. A normal pair takes ~8 ms (docs/hosts.md); the slowest
#: legitimate pairs in tests/test_grading.py take < 0.5 s on 2 cores, so 3 s leaves headroom.
DEFAULT_DEADLINE_S = 3.0
#: Longest answer string math-verify sees. MATH-500/AMC gold answers are < 100 characters;
#: longer extracted answers are compared exactly only.
MAX_SYMBOLIC_CHARS = 300
#: Longest digit run math-verify sees (sympy on 100,000-digit numbers hangs: docs/hosts.md).
MAX_DIGITS = 60
#: Deepest brace nesting math-verify sees (deep nesting recurses in the LaTeX parser).
MAX_BRACE_DEPTH = 12
#: Longest response scanned for an answer; longer text is scanned in its last part only.
MAX_SCAN_CHARS = 200_000
#: math-verify worker processes per process; 2 = this project's core count (more would only queue on CPU).
_POOL_WORKERS = 2


def _deadline_from_env() -> float:
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return DEFAULT_DEADLINE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{DEADLINE_ENV}={raw!r}: expected a positive number of seconds (default {DEFAULT_DEADLINE_S})"
        )
    return value


#: Deadline of one grading call in seconds (module docstring); read at each call, so assigning it
#: changes it for the process.
GRADE_DEADLINE_S = _deadline_from_env()

# Linear patterns (Python >= 3.11): ``*+``/``++`` never give back what they matched and ``(?>..)``
# commits to its first match, so a long run (digits, spaces, newlines) is scanned once per start,
# not once per way to split it (the number-then-words pattern was quadratic on a digit run:
# 8,000 digits took 1.7 s). Each possessive form matches exactly what the greedy form matched.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*+\{")
_GSM_RE = re.compile(r"####\s*+([^\n]+)")
_ANSWER_IS_RE = re.compile(r"answer\s++is\s*+:?+\s*+(.+)", re.IGNORECASE)
_TOWER_RE = re.compile(r"\^\s*+\{?+[^{}^]*+\^|\^\s*+\{[^{}]*+\{[^}^]*+\^|\*\*[^*]*+\*\*")
_BIG_EXP_RE = re.compile(r"\^\s*+\{?+\s*+-?\d{5,}")
_DIGITS_RE = re.compile(r"\d+")
#: A number followed only by words (units, "years ago"), as seen in SmolLM2 outputs.
_NUMBER_THEN_WORDS_RE = re.compile(r"\\?\$?\s*+((?>-?[\d,]*\.?\d+))\s*+(?:[A-Za-z][A-Za-z .]*+)?+")
_NUM_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/[-+]?\d+)?")


class _PastDeadline(Exception):
    """A grading call's deadline passed (its message: the step it was in); caught by the public
    functions, which grade the call wrong (``partial``: their result so far, e.g. the answer)."""

    def __init__(self, step: str, partial: object = None) -> None:
        super().__init__(step)
        self.partial = partial


def _check(deadline: float, step: str) -> None:
    if time.monotonic() > deadline:
        raise _PastDeadline(step)


def _shown(value: object) -> str:
    """An input as the logs show it: its length and ends, never all of a 200 kB string."""
    if not isinstance(value, str) or len(value) <= 160:
        return repr(value)
    return f"{len(value)} chars {value[:80]!r}…{value[-80:]!r}"


def _bounded(what: str, default, deadline_s: float | None, step, *args):
    """``step(*args, deadline)`` under one call's deadline; ``default`` (logged) when it is past
    or when ``step`` fails on the input. Only :class:`GraderUnavailableError` propagates."""
    seconds = GRADE_DEADLINE_S if deadline_s is None else deadline_s
    try:
        return step(*args, time.monotonic() + seconds)
    except _PastDeadline as late:
        result = default if late.partial is None else late.partial
        logger.warning(
            "grading: %s passed its %.3g s deadline in %s; graded %r: %s",
            what, seconds, late, result, ", ".join(map(_shown, args)),
        )  # fmt: skip
        return result
    except GraderUnavailableError:
        raise
    except Exception:  # never raise on model output
        logger.exception("grading: %s failed on %s", what, ", ".join(map(_shown, args)))
    return default


def extract_boxed(text: str, *, deadline_s: float | None = None) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces, ``\\boxed {x}``).

    Returns ``None`` when there is none, its braces never close, or the deadline passed. Only
    boxed forms: the ``####`` and "The answer is" fallbacks live in :func:`extract_answer`.
    """
    return _bounded("extract_boxed", None, deadline_s, _boxed, text) if isinstance(text, str) else None


def _boxed(text: str, deadline: float) -> str | None:
    text = text[-MAX_SCAN_CHARS:]
    # An unclosed box at p means no earlier box can close after p (its depth there is >= 1
    # and never falls back): scan each earlier box only up to the last failed start. O(n).
    limit = len(text)
    starts = list(_BOX_RE.finditer(text))
    _check(deadline, "the box search")
    for k, match in enumerate(reversed(starts)):
        if not k % 1024:
            _check(deadline, "the box scan")
        content = _balanced(text, match.end(), limit)
        if content is not None:
            return content.strip()
        limit = match.start()
    return None


def _balanced(text: str, start: int, limit: int) -> str | None:
    """Text from ``start`` up to the brace closing the one just before it (before ``limit``)."""
    close = text.find("}", start, limit)
    if close >= 0 and text.find("{", start, close) < 0 and text.find("\\", start, close) < 0:
        return text[start:close]  # the usual box, no brace or escape inside: found at C speed
    depth = 1
    i = start
    while i < limit:
        ch = text[i]
        if ch == "\\":  # skip escaped braces like \{ and \}
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def extract_answer(text: str, *, deadline_s: float | None = None) -> str | None:
    """The final answer of a response: last boxed, then ``#### x``, then "The answer is x".

    ``None`` when there is none or the deadline (:data:`GRADE_DEADLINE_S`) passed (logged).
    """
    return _bounded("extract_answer", None, deadline_s, _answer, text) if isinstance(text, str) else None


def _answer(text: str, deadline: float) -> str | None:
    text = text[-MAX_SCAN_CHARS:]
    boxed = _boxed(text, deadline)
    if boxed is not None:
        return boxed
    for name, regex in (("'####'", _GSM_RE), ("'answer is'", _ANSWER_IS_RE)):
        _check(deadline, f"the {name} fallback")
        matches = regex.findall(text)
        if matches:
            answer = _clean_fallback(matches[-1])
            if answer:
                return answer
    return None


def _clean_fallback(answer: str) -> str:
    """Unboxed answers run on in prose ("... is 16 + 1 = 17 dollars."): keep the final value."""
    answer = answer.strip().rstrip(".").strip().strip("$").strip()
    if "=" in answer:  # "x + 1 = 17": the right-hand side is the claim
        answer = answer.rsplit("=", 1)[1].strip()
    unit = _NUMBER_THEN_WORDS_RE.fullmatch(answer)
    return unit.group(1) if unit else answer


_STRIP_SUBS = (
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |~"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\^\s*+\{?\\circ\}?|°"), ""),
    (re.compile(r"\\%|%"), ""),
    (re.compile(r"\\\$|\$"), ""),
    (re.compile(r"\\text\{\s*+([^{}]*+)\}|\\mathrm\{\s*+([^{}]*+)\}|\\textbf\{\s*+([^{}]*+)\}"), r"\1\2\3"),
)
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_SPACE_RE = re.compile(r"\s+")


def _normalize(answer: str) -> str:
    """A canonical surface form for the exact path (spacing, \\left, \\dfrac, $, %, degrees)."""
    s = answer.strip()
    for regex, repl in _STRIP_SUBS:
        s = regex.sub(repl, s)
    s = _THOUSANDS_RE.sub("", s)  # 1,000 -> 1000
    s = _SPACE_RE.sub("", s)
    s = s.rstrip(".")
    if s.startswith(("x=", "y=", "n=", "k=")) and "=" not in s[2:]:
        s = s[2:]  # "x = 5" answers a question about x
    return s


def _as_number(s: str) -> Fraction | None:
    """A normalized plain number (int, decimal, a/b, \\frac{a}{b}) as an exact Fraction."""
    if len(s) > MAX_DIGITS:
        return None
    frac = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", s) or re.fullmatch(r"(-?)\\frac(\d)(\d)", s)
    try:
        if frac:
            value = Fraction(int(frac.group(2)), int(frac.group(3)))
            return -value if frac.group(1) else value
        if _NUM_RE.fullmatch(s):
            return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _symbolic_safe(s: str) -> bool:
    """Whether math-verify may see ``s`` without risking a minutes-long sympy evaluation."""
    if len(s) > MAX_SYMBOLIC_CHARS or _TOWER_RE.search(s) or _BIG_EXP_RE.search(s):
        return False
    if any(len(run) > MAX_DIGITS for run in _DIGITS_RE.findall(s)):
        return False
    depth = deepest = 0
    for ch in s:
        depth += (ch == "{") - (ch == "}")
        deepest = max(deepest, depth)
    return deepest <= MAX_BRACE_DEPTH and "__" not in s


class GraderUnavailableError(RuntimeError):
    """math-verify cannot run in this environment (its worker process does not start)."""


def is_equivalent(pred: str | None, gold: str | None, *, deadline_s: float | None = None) -> bool:
    """Whether answer ``pred`` equals answer ``gold`` (both already extracted); ``False`` past the
    deadline (:data:`GRADE_DEADLINE_S`, logged).

    Raises :class:`GraderUnavailableError` when math-verify cannot start; never on an input.
    """
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    return _bounded("is_equivalent", False, deadline_s, _equivalent, pred, gold)


def _equivalent(pred: str, gold: str, deadline: float) -> bool:
    pred, gold = pred.strip(), gold.strip()
    if not pred or not gold:
        return False
    if pred == gold:
        return True
    norm_pred, norm_gold = _normalize(pred), _normalize(gold)
    _check(deadline, "the normalization")
    if norm_pred == norm_gold and norm_pred:
        return True
    num_pred, num_gold = _as_number(norm_pred), _as_number(norm_gold)
    if num_pred is not None and num_gold is not None:
        return num_pred == num_gold
    if not (_symbolic_safe(pred) and _symbolic_safe(gold)):
        logger.debug("grading: unsafe for math-verify, exact only: %r vs %r", pred[:80], gold[:80])
        return False
    left = deadline - time.monotonic()
    if left <= 0:
        raise _PastDeadline("the exact path, before math-verify")
    verdict = _workers().call(pred, gold, left)
    if verdict is None:
        raise _PastDeadline("math-verify (its worker process was killed and is replaced)")
    return verdict


def grade(response: str, gold: str, *, deadline_s: float | None = None) -> bool:
    """Whether ``response`` answers ``gold``: see :func:`grade_response`."""
    return grade_response(response, gold, deadline_s=deadline_s)[1]


def grade_response(response: str, gold: str, *, deadline_s: float | None = None) -> tuple[str | None, bool]:
    """``(answer, correct)``: the answer of ``response`` (:func:`extract_answer` on the text after
    its first ``</think>``, the whole response when no think block is closed) and whether it equals
    ``gold`` (extracted first when it is a boxed or GSM8K ``####`` solution).

    One deadline (:data:`GRADE_DEADLINE_S` or ``deadline_s``) covers the whole call; past it the
    response is graded wrong (logged). Raises :class:`GraderUnavailableError` only.
    """
    if not isinstance(response, str) or not isinstance(gold, str):
        return None, False
    return _bounded("grade", (None, False), deadline_s, _grade, response, gold)


def _grade(response: str, gold: str, deadline: float) -> tuple[str | None, bool]:
    from extra_cot.think import split_think

    answer_part = split_think(response)[1]
    _check(deadline, "the think split")
    pred = _answer(answer_part, deadline)
    gold_answer = _answer(gold, deadline) if ("\\boxed" in gold or "####" in gold) else gold
    if not isinstance(pred, str) or not isinstance(gold_answer, str):
        return pred, False
    try:
        return pred, _equivalent(pred, gold_answer, deadline)
    except _PastDeadline as late:
        raise _PastDeadline(str(late), (pred, False)) from None


# --- math-verify behind a deadline, in worker processes ----------------------------------------
#
# A thread cannot be stopped, and sympy holds the GIL: an abandoned comparison would burn a core
# for minutes and, in verl's long-lived reward workers, accumulate. So math-verify runs in small
# worker *processes* (``python -m extra_cot.grading --worker``, one JSON line per request): a call
# past its deadline kills its worker, and the next call starts a fresh one. Workers exit when
# their parent dies, even mid-computation (each runs under ``extra_cot.lifeline``).

#: Start-up ceiling of a worker (imports math-verify and sympy: ~1 s measured on 2 cores).
WORKER_STARTUP_S = 120.0
_READY = b"ready\n"


def _unavailable(command: list[str], cause: str) -> GraderUnavailableError:
    return GraderUnavailableError(
        f"math-verify worker did not start: {cause}. Without it every symbolic answer pair would be "
        f"graded wrong, so grading stops. Fix: `{' '.join(command)}` must print 'ready': install "
        f"math-verify==0.9.0 into this interpreter ({sys.executable}: pip install 'math-verify==0.9.0') "
        "and check that no other module named math_verify shadows it (PYTHONPATH)"
    )


class _Worker:
    """One math-verify process; used by one thread at a time (see :class:`_WorkerPool`)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self._buf = b""

    def _start(self) -> None:
        from extra_cot import lifeline

        command = [sys.executable, "-m", "extra_cot.grading", "--worker"]
        try:
            self.proc = lifeline.popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        except OSError as err:
            raise _unavailable(command, f"{type(err).__name__}: {err}") from err
        self._buf = b""
        try:
            ready = self._read_line(WORKER_STARTUP_S)
            cause = f"no ready line within {WORKER_STARTUP_S:.0f} s"
        except EOFError:
            ready, cause = None, "it exited before answering (its traceback is on stderr above)"
        if ready != _READY:
            self.kill()
            raise _unavailable(command, cause)

    def _read_line(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EOFError("math-verify worker exited")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"

    def call(self, pred: str, gold: str, deadline_s: float) -> bool | None:
        """math-verify's verdict; None when the worker missed the deadline (it is then killed)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps([pred, gold]).encode() + b"\n")
        line = self._read_line(deadline_s)
        if line is None:
            self.kill()
            return None
        return json.loads(line) is True

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the lifeline and the worker: their own session
            except ProcessLookupError:
                pass
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                stream.close()


class _WorkerPool:
    """``size`` workers shared by any number of threads (a queue of idle workers)."""

    def __init__(self, size: int) -> None:
        self.pid = os.getpid()
        self.idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self.all = [_Worker() for _ in range(size)]
        for worker in self.all:
            self.idle.put(worker)

    def call(self, pred: str, gold: str, deadline_s: float) -> bool | None:
        worker = self.idle.get()
        try:
            try:
                return worker.call(pred, gold, deadline_s)
            except (OSError, EOFError, ValueError) as err:  # died between calls (OOM killer, ...): once more
                logger.warning("grading: math-verify worker lost (%r); retrying on a fresh one", err)
                worker.kill()
                return worker.call(pred, gold, deadline_s)
        except BaseException:
            worker.kill()
            raise
        finally:
            self.idle.put(worker)

    def close(self) -> None:
        for worker in self.all:
            worker.kill()


_pool_lock = threading.Lock()
_pool: _WorkerPool | None = None


def _workers() -> _WorkerPool:
    """The per-process pool (a forked child makes its own; it must not use its parent's pipes)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = _WorkerPool(_POOL_WORKERS)
        return _pool


@atexit.register
def _shutdown() -> None:
    if _pool is not None and _pool.pid == os.getpid():
        _pool.close()


def _math_verify(pred: str, gold: str) -> bool:
    import math_verify.grader
    import math_verify.parser
    from math_verify import LatexExtractionConfig, parse, verify

    # Its "timeout disabled" warning is expected here (our deadline replaces it): shown once
    # per process it would only alarm readers of every eval and RL log.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    config = [LatexExtractionConfig()]
    # Wrapping in \\boxed{} makes the LaTeX extractor take the whole answer; timeouts off
    # because signal.alarm fails off the main thread (docs/hosts.md): the deadline is ours.
    gold_parsed = parse(f"\\boxed{{{gold}}}", config, parsing_timeout=None)
    pred_parsed = parse(f"\\boxed{{{pred}}}", config, parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _worker_main() -> int:
    """``python -m extra_cot.grading --worker``: answer ``[pred, gold]`` lines on stdin."""
    import math_verify  # noqa: F401  # import before "ready": start-up is not charged to a deadline

    out = sys.stdout.buffer
    out.write(_READY)
    out.flush()
    for line in sys.stdin.buffer:  # EOF: the parent closed the pipe or died
        pred, gold = json.loads(line)
        try:
            verdict = _math_verify(pred, gold)
        except Exception:
            logger.exception("math-verify failed on %r vs %r", pred[:200], gold[:200])
            verdict = False
        out.write(b"true\n" if verdict else b"false\n")
        out.flush()
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_worker_main())
