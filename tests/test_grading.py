"""The shared grader: extraction, equivalence, hostile inputs, thread safety, bounded time.

No assertion here reads the wall clock against a fixed budget (the suite shares its machine):
linearity is a ratio of this thread's CPU time at two input sizes, deadlines are checked by what
happened (verdict, log, killed worker), and absolute speed lives in ``benchmarks/grader_bench.py``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extra_cot import grading
from extra_cot.grading import extract_answer, extract_boxed, grade, grade_response, is_equivalent

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "grader_bench.py"
_spec = importlib.util.spec_from_file_location("grader_bench", _BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

EQUIVALENT = [
    ("42", "42"),
    ("0.5", r"\frac{1}{2}"),
    (r"\dfrac{3}{4}", "0.75"),
    (r"\tfrac{3}{4}", r"\frac34"),
    (r"\frac12", "0.5"),
    ("1,000", "1000"),
    ("18.00", "18"),
    ("-3", r"-\frac{6}{2}"),
    (r"\left(3, \frac{\pi}{2}\right)", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"(3,\frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)"),
    ("x = 5", "5"),
    (r"\$50", "50"),
    (r"50\%", "50"),
    (r"30^\circ", "30"),
    (r"\text{(C)}", "C"),
    (r"2\sqrt{2}", r"\sqrt{8}"),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    (r"\pi/2", r"\frac{\pi}{2}"),
    (r"\{1,2\}", r"\{2,1\}"),
    (r"[1,2)", r"[1,2)"),
    (r"(-\infty, 3]", r"(-\infty,3]"),
    ("x^2+2x+1", "(x+1)^2"),
    (r"\sqrt{\frac{1}{4}}", "0.5"),
    (r"2^{10}", "1024"),
    (r"10\text{ cm}", "10"),
]
NOT_EQUIVALENT = [
    ("3", "4"),
    ("0.33", r"\frac{1}{3}"),
    ("-5", "5"),
    (r"\frac{1}{2}", r"\frac{2}{1}"),
    (r"2\sqrt{2}", r"\sqrt{2}"),
    ("(1,2)", "(2,1)"),
    ("x^2+1", "(x+1)^2"),
    ("1000", "100"),
    (r"\pi", "3.14"),
    ("", "1"),
    ("1", ""),
    (None, "1"),
    ("1", None),
    ("A", "B"),
]
HOSTILE = [
    r"10^{10^{10^{10^{10}}}}",
    "9" * 100_000,
    "9" * 5000 + r"^{" + "9" * 5000 + "}",
    r"2^{2^{2^{2^{2^{2^{2}}}}}}",
    "10**10**10**10",
    r"10^{99999999}",
    "{" * 5000 + "1" + "}" * 5000,
    r"\frac{" * 3000 + "1" + "}{2}" * 3000,
    "__import__('os').system('touch /tmp/extra_cot_pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    r"\boxed{" * 10_000,
    "\x00\uffff\ud800" * 100,
    "(" * 100_000,
]


@pytest.mark.parametrize("pred,gold", EQUIVALENT)
def test_equivalent_pairs(pred, gold):
    assert is_equivalent(pred, gold)
    assert is_equivalent(gold, pred)


@pytest.mark.parametrize("pred,gold", NOT_EQUIVALENT)
def test_not_equivalent_pairs(pred, gold):
    assert not is_equivalent(pred, gold)


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed {7}", "7"),
        (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{1}{\sqrt{2}}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\fbox{3}", "3"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{a} and an unclosed \boxed{b", "a"),
        ("no box", None),
        ("", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("She makes 9 * 2 = $18.\n#### 18", "18"),
        ("#### 1,234", "1,234"),
        ("So the answer is $42$.", "42"),
        ("The answer is: 7", "7"),
        (r"The answer is 3, i.e. \boxed{5}", "5"),  # boxed wins over the fallbacks
        ("nothing here", None),
        # prose after unboxed answers, as SmolLM2-135M writes them (measured in a real sweep)
        ("So the answer is 590 + 59 = 649 dollars", "649"),
        ("The answer is 5 years ago.", "5"),
        ("The answer is 1.75 boxes of pizza", "1.75"),
        ("The answer is 3 and 4", "3 and 4"),
    ],
)
def test_extract_answer_fallbacks(text, expected):
    assert extract_answer(text) == expected


def test_grade_reads_the_answer_after_think():
    response = "<COMP_40>\n<think>\nmaybe \\boxed{3}</think>\n\nSo \\boxed{4}."
    assert grade(response, "4")
    assert not grade(response, "3")
    assert grade("<think>\nunclosed \\boxed{4}", "4")  # unclosed think: whole output
    assert grade("\\boxed{18}", "Janet sells 9 eggs.\n#### 18")  # a GSM8K solution as gold
    assert not grade(None, "1") and not grade("\\boxed{1}", None)


#: A box inside the think block is reasoning, not the answer: graded on the part after </think>.
BOX_IN_THINK = [
    ("<COMP_40>\n<think>\nit is \\boxed{4}</think>\n\nI am not sure.", "4", None),
    ("<think>\n\\boxed{4}</think>\n\nThe answer is 3", "4", "3"),
    ("<think>\n\\boxed{4}</think>\n\n#### 5", "4", "5"),
]


@pytest.mark.parametrize("response,gold,pred", BOX_IN_THINK)
def test_a_box_inside_the_think_block_is_not_graded(response, gold, pred):
    assert grade_response(response, gold) == (pred, False)
    assert not grade(response, gold)


@pytest.mark.parametrize("response,gold,pred", BOX_IN_THINK)
def test_eval_grades_with_the_same_rule(response, gold, pred):
    from extra_cot.eval.runner import _grade

    assert _grade(response, gold) == (pred, False)
    assert _grade(response.replace("</think>", "</think> \\boxed{4}", 1), gold) == ("4", True)


#: The one HOSTILE answer that math-verify may see (short, no power tower, no digit run): harmless.
HOSTILE_FOR_MATH_VERIFY = {"\x00\uffff\ud800" * 100}


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_answers_never_raise_and_never_reach_math_verify(text, monkeypatch):
    """The input guards keep sympy away from these (it would run for minutes on most of them)."""
    calls = []

    class Recorder:
        def call(self, pred, gold, seconds):
            calls.append(pred)
            return False

    monkeypatch.setattr(grading, "_workers", Recorder)
    assert is_equivalent(text, "1") is False
    assert is_equivalent("1", text) is False
    extract_boxed(text)
    extract_answer(text)
    assert grade(f"\\boxed{{{text}}}", "1") is False
    assert calls == [] or text in HOSTILE_FOR_MATH_VERIFY


def _cpu_s_per_call(fn, *args, repeat: int = 5) -> float:
    """Fastest of ``repeat`` calls, in this thread's CPU seconds (other processes do not count)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        fn(*args)
        best = min(best, time.thread_time() - start)
    return max(best, 1e-5)


#: Input sizes of the linearity check; 8x the characters costs ~8x the CPU when linear, 64x when
#: quadratic. The limit, 24x, is 3x above linear: cache effects and the fixed cost per call stay
#: well under it, and the quadratic patterns of issue 37 measured 40-70x between these sizes.
LINEAR_SIZES, LINEAR_LIMIT = (2_000, 16_000), 24.0


@pytest.mark.parametrize("case", list(bench.hostile_corpus(LINEAR_SIZES[0])))
def test_grading_time_is_linear_in_the_response(case):
    """benchmarks/grader_bench.py's hostile corpus (runs of digits, spaces, newlines, braces,
    repeated boxes and tags, nested LaTeX): 8x the characters may cost at most 24x the CPU, for
    the whole path and for extract_answer alone (which sees the text unstripped)."""
    small, large = (bench.hostile_corpus(n)[case] for n in LINEAR_SIZES)
    assert grade(*small) is False and grade(*large) is False
    for fn, args in ((grade, (small, large)), (extract_answer, ((small[0],), (large[0],)))):
        ratio = _cpu_s_per_call(fn, *args[1]) / _cpu_s_per_call(fn, *args[0])
        times = LINEAR_SIZES[1] // LINEAR_SIZES[0]
        assert ratio < LINEAR_LIMIT, f"{fn.__name__}, {case}: {ratio:.0f}x the CPU for {times}x the text"


#: The patterns as they were before issue 37 (greedy, backtracking) and the linear ones now: each
#: must give the same result wherever the old one finishes (short strings). Not here: the two
#: fallbacks ('####', 'answer is'), which now skip a match that is only white space or ':' (it
#: was cleaned to "" or graded as the answer ":") in favour of the previous real one.
OLD_PATTERNS = [
    (grading._NUMBER_THEN_WORDS_RE, r"\\?\$?\s*(-?[\d,]*\.?\d+)\s*(?:[A-Za-z][A-Za-z .]*)?", "fullmatch"),
    (grading._TOWER_RE, r"\^\s*\{?[^{}]*\^|\^\s*\{[^}]*\{[^}]*\^|\*\*[^*]*\*\*", "search"),
    (grading._BIG_EXP_RE, r"\^\s*\{?\s*-?\d{5,}", "search"),
    (grading._BOX_RE, r"\\(?:boxed|fbox)\s*\{", "finditer"),
    (grading._STRIP_SUBS[2][0], r"\^\s*\{?\\circ\}?|°", "finditer"),
    (
        grading._STRIP_SUBS[5][0],
        r"\\text\{\s*([^{}]*)\}|\\mathrm\{\s*([^{}]*)\}|\\textbf\{\s*([^{}]*)\}",
        "finditer",
    ),
]
_PIECES = st.sampled_from(
    [
        "1",
        "23",
        ",",
        ".",
        "-",
        "$",
        "\\",
        " ",
        "\n",
        "a",
        "bc",
        "^",
        "{",
        "}",
        "*",
        "**",
        "12345",
        "\\boxed",
        "\\fbox",
        "!",
        "\\circ",
        "°",
        "\\text{",
        "\\mathrm{",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=14))
def test_linear_patterns_match_what_the_old_ones_matched(pieces):
    text = "".join(pieces)
    for new, old, how in OLD_PATTERNS:
        old = re.compile(old)
        if how == "fullmatch":
            a, b = new.fullmatch(text), old.fullmatch(text)
            assert (a and a.group(1)) == (b and b.group(1)), (new.pattern, text)
        elif how == "search":  # used as a yes/no test only
            assert bool(new.search(text)) == bool(old.search(text)), (new.pattern, text)
        else:
            assert [m.groups() + m.span() for m in new.finditer(text)] == [
                m.groups() + m.span() for m in old.finditer(text)
            ], (new.pattern, text)


def _grade_in_thread(*args, **kwargs):
    """``grade_response`` called from a thread that is not the main thread (as verl and eval do)."""
    out = {}
    thread = threading.Thread(target=lambda: out.update(result=grade_response(*args, **kwargs)))
    thread.start()
    thread.join(timeout=300)
    assert not thread.is_alive(), "grading stalled"
    assert threading.current_thread() is threading.main_thread()
    return out["result"]


def test_a_call_past_its_deadline_is_graded_wrong_and_logged(caplog, monkeypatch):
    """One deadline covers extraction too; it is a clock, so it works off the main thread."""
    response = "<think>\n" + "reasoning " * 20_000 + "</think>\n\nThe answer is \\boxed{1}."
    assert _grade_in_thread(response, "1") == ("1", True)
    with caplog.at_level(logging.WARNING, logger="extra_cot.grading"):
        assert _grade_in_thread(response, "1", deadline_s=1e-6) == (None, False)  # 200 kB in 1 µs: never
    assert "deadline" in caplog.text and "graded (None, False)" in caplog.text
    monkeypatch.setattr(grading, "GRADE_DEADLINE_S", 1e-6)  # the module default, read at each call
    assert _grade_in_thread(response, "1") == (None, False)
    padded = "1.0" + " " * 200_000  # equal to "1" once spaces are normalized away
    assert extract_answer(response) is None and is_equivalent(padded, "1") is False
    assert is_equivalent(padded, "1", deadline_s=60) is True


def test_the_deadline_is_set_by_the_environment(tmp_path):
    code = "from extra_cot import grading; print(grading.GRADE_DEADLINE_S)"
    env = {**os.environ, grading.DEADLINE_ENV: "0.25"}
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "0.25", out.stderr
    env[grading.DEADLINE_ENV] = "soon"
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and f"{grading.DEADLINE_ENV}='soon'" in out.stderr


#: Payloads that do their harm when evaluated as Python (``{marker}``: a path they create): one
#: that the input guard stops ("__"), one that passes it and reaches math-verify.
EXECUTABLE = [
    "__import__('os').system('touch {marker}')",
    "exec('import os; os.system(\"touch {marker}\")')",
]


def test_model_output_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [p.format(marker=marker) for p in EXECUTABLE]
    for payload in payloads:  # the check can fail: evaluated, each payload leaves the marker
        subprocess.run([sys.executable, "-c", payload], check=False, timeout=120)
        assert marker.exists(), payload
        marker.unlink()
    for payload in payloads:
        assert grade(f"<think>x</think> \\boxed{{{payload}}}", "0") is False
        assert is_equivalent(payload, "0") is False and extract_answer(f"The answer is {payload}") == payload
        assert grading._workers().call(payload, "0", 30.0) is False  # past the guard, into math-verify
    assert not marker.exists()


def test_calls_from_worker_threads_agree_with_main_thread():
    """math-verify's signal.alarm fails off the main thread (docs/hosts.md); ours must not."""
    pairs = EQUIVALENT + NOT_EQUIVALENT
    expected = [is_equivalent(p, g) for p, g in pairs]
    results: dict[int, list[bool]] = {}

    def work(k: int) -> None:
        results[k] = [is_equivalent(p, g) for p, g in pairs]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 6
    assert all(r == expected for r in results.values())
    assert expected[: len(EQUIVALENT)] == [True] * len(EQUIVALENT)


#: Inputs on which math-verify itself runs for minutes (measured: > 20 s for the tower). The grader's
#: input filter keeps them from math-verify; these tests let them through to reach the deadline path.
SLOW_FOR_MATH_VERIFY = [r"2^{2^{2^{2^{2^{2}}}}}", r"10^{10^{10^{10^{10}}}}", "9" * 100_000]
#: Deadline of the late calls below, on the two towers (they never finish; the digit run takes
#: ~2 s): any value works, and 1 s leaves the extraction before math-verify (milliseconds) room
#: on a loaded machine, so the deadline is reached inside math-verify, where the worker is killed.
LATE_S = 1.0


def _warm_workers():
    for _ in range(grading._POOL_WORKERS):  # start every worker: start-up is not the deadline's business
        assert is_equivalent(r"2\sqrt{2}", r"\sqrt{8}") is True


def _worker_pids() -> list[int]:
    """The pool's processes: each worker's lifeline and the math-verify process under it."""
    lifelines = [w.proc.pid for w in grading._workers().all if w.proc is not None]
    return lifelines + [c for pid in lifelines for c in _children(pid)]


@pytest.fixture
def unguarded(monkeypatch):
    """Let every answer through the input guard, so slow ones reach math-verify and its deadline."""
    monkeypatch.setattr(grading, "_symbolic_safe", lambda s: True)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc (Linux)")
def test_deadline_stops_a_slow_math_verify_in_a_thread(unguarded, caplog):
    """A comparison past the deadline, called off the main thread: graded wrong, logged, and its
    worker process killed (nothing keeps computing)."""
    _warm_workers()
    before = _worker_pids()
    with caplog.at_level(logging.WARNING, logger="extra_cot.grading"):
        response = f"<think>x</think> \\boxed{{{SLOW_FOR_MATH_VERIFY[0]}}}"
        assert _grade_in_thread(response, "1", deadline_s=LATE_S) == (SLOW_FOR_MATH_VERIFY[0], False)
    assert "deadline in math-verify" in caplog.text
    # one worker killed: its lifeline and its math-verify process (a SIGKILLed process may take a
    # moment to vanish; one never killed would stay forever)
    _wait_for(lambda: sum(_state(pid) in ("gone", "Z") for pid in before) == 2, "the late worker killed")
    assert sum(_state(pid) in ("gone", "Z") for pid in before) == 2


def test_a_stuck_comparison_does_not_block_later_calls(unguarded):
    for _ in range(grading._POOL_WORKERS + 1):  # more stuck calls than workers
        assert is_equivalent(SLOW_FOR_MATH_VERIFY[0], "1", deadline_s=0.3) is False
    assert is_equivalent(r"2\sqrt{2}", r"\sqrt{8}") is True


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except FileNotFoundError:  # exited meanwhile
        pass
    return kids


def _descendants(pid: int) -> list[int]:
    kids = _children(pid)
    return kids + [d for k in kids for d in _descendants(k)]


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc (Linux)")
def test_late_calls_leave_nothing_running(unguarded):
    """Hostile answers in a loop: every late call's worker is killed with its lifeline, no thread
    is left behind, and grading goes on."""
    threads_before = threading.active_count()
    for i in range(4):
        _warm_workers()  # restarts the worker the last late call killed
        before = set(_worker_pids())
        assert is_equivalent(SLOW_FOR_MATH_VERIFY[i % 2], "1", deadline_s=LATE_S) is False
        killed = before - set(_worker_pids())  # no longer the pool's: its lifeline and its process
        assert len(killed) == 2
        _wait_for(lambda: all(_state(pid) in ("gone", "Z") for pid in killed), "the late worker killed")  # noqa: B023
        assert len(_worker_pids()) <= 2 * grading._POOL_WORKERS
    assert threading.active_count() <= threads_before
    assert is_equivalent(r"2\sqrt{2}", r"\sqrt{8}") is True  # still grading


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc (Linux)")
def test_a_worker_lost_between_calls_is_replaced():
    import signal

    from extra_cot import grading

    _warm_workers()
    # The math-verify processes are the children of the pool's lifelines (not every leaf under pytest:
    # earlier tests in the same session may have left children of their own).
    lifelines = [w.proc.pid for w in grading._workers().all if w.proc is not None]
    leaves = [c for pid in lifelines for c in _children(pid)]
    assert len(leaves) == grading._POOL_WORKERS
    for pid in leaves:
        os.kill(pid, signal.SIGKILL)
    for _ in range(grading._POOL_WORKERS + 1):  # every worker is found dead and restarted, verdicts right
        assert is_equivalent(r"2\sqrt{2}", r"\sqrt{8}") is True


def test_a_worker_that_cannot_start_stops_grading_instead_of_grading_wrong(tmp_path, monkeypatch):
    """No math-verify (here: shadowed by a broken module) must raise, not turn every pair "wrong"."""
    from extra_cot import grading

    (tmp_path / "math_verify").mkdir()
    (tmp_path / "math_verify" / "__init__.py").write_text("raise ImportError('broken math_verify')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(grading, "_pool", None)  # a fresh pool whose workers see the broken module
    try:
        with pytest.raises(grading.GraderUnavailableError) as info:
            grade(r"so \boxed{\sqrt{8}}", r"2\sqrt{2}")
        for needle in ("did not start: it exited before answering (its traceback is on stderr above). ",
                       "math-verify==0.9.0", "PYTHONPATH", sys.executable):
            assert needle in str(info.value)
        with pytest.raises(grading.GraderUnavailableError):
            is_equivalent(r"\sqrt{8}", r"2\sqrt{2}")
        assert is_equivalent("4", "4.0") is True  # the exact/numeric path needs no worker
    finally:
        grading._workers().close()


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    """Poll until ``condition()``; the generous timeout only bounds a broken run (load-independent)."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.1)


def test_grader_workers_exit_with_their_parent():
    """A killed parent leaves no math-verify worker behind, even one busy on a hostile input."""
    code = (
        "import sys, threading; from extra_cot import grading;"
        "grading._workers().all[0]._start(); print('started', flush=True);"  # the worker the call below gets
        "threading.Thread(target=grading._workers().call, args=(sys.argv[1], '1', 600), daemon=True).start();"
        "import time; time.sleep(600)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, SLOW_FOR_MATH_VERIFY[0]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline() == "started\n"
        workers = _descendants(parent.pid)  # the lifeline and its math-verify worker
        assert len(workers) == 2, "the parent started no worker"
        started = sum(_cpu_s(w) for w in workers)  # start-up (imports) done: what follows is sympy's work
        _wait_for(lambda: sum(_cpu_s(w) for w in workers) > started + 0.5, "the worker computing")
    finally:
        parent.kill()
        parent.wait()
    _wait_for(lambda: all(_state(w) in ("gone", "Z") for w in workers), "the workers gone with their parent")


@pytest.mark.slow
def test_grading_inside_a_threaded_ray_actor():
    """verl runs scorers in Ray actors; a threaded actor runs methods off the main thread."""
    import ray

    pairs = [
        ("0.5", r"\sqrt{\frac{1}{4}}"),
        (r"2\sqrt{2}", r"\sqrt{8}"),
        ("3", "4"),
        (r"10^{10^{10^{10}}}", "1"),
    ]

    @ray.remote(max_concurrency=4)
    class Grader:
        def grade(self, pred, gold):
            import threading

            from extra_cot.grading import is_equivalent

            return is_equivalent(pred, gold), threading.current_thread() is threading.main_thread()

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        actor = Grader.remote()
        results = ray.get([actor.grade.remote(p, g) for p, g in pairs * 3], timeout=120)
    finally:
        ray.shutdown()
    assert [r[0] for r in results] == [True, True, False, False] * 3
    assert not any(r[1] for r in results)  # really off the main thread


# --- pinned exactly for the mutation run (docs/mutation.md) ---

@pytest.mark.parametrize("raw,expected", [(None, 3.0), ("", 3.0), ("   ", 3.0), (" 2.5 ", 2.5), ("0.5", 0.5),
                                          ("1e-3", 0.001), ("7", 7.0)])
def test_deadline_from_env_values(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv(grading.DEADLINE_ENV, raising=False)
    else:
        monkeypatch.setenv(grading.DEADLINE_ENV, raw)
    assert grading.DEADLINE_ENV == "EXTRA_COT_GRADE_DEADLINE_S"
    assert grading._deadline_from_env() == expected


@pytest.mark.parametrize("raw", ["0", "-1", "inf", "nan", "abc", "-0.0"])
def test_deadline_from_env_refuses(monkeypatch, raw):
    monkeypatch.setenv(grading.DEADLINE_ENV, raw)
    with pytest.raises(ValueError) as err:
        grading._deadline_from_env()
    assert str(err.value) == (f"EXTRA_COT_GRADE_DEADLINE_S={raw!r}: expected a positive number of seconds "
                              "(default 3.0)")


def test_unavailable_message_names_the_command_and_the_fix():
    err = grading._unavailable(["python", "-m", "extra_cot.grading", "--worker"], "it exited 1")
    assert isinstance(err, grading.GraderUnavailableError)
    assert str(err) == (
        "math-verify worker did not start: it exited 1. Without it every symbolic answer pair would be "
        "graded wrong, so grading stops. Fix: `python -m extra_cot.grading --worker` must print 'ready': install "
        f"math-verify==0.9.0 into this interpreter ({sys.executable}: pip install 'math-verify==0.9.0') "
        "and check that no other module named math_verify shadows it (PYTHONPATH)"
    )


@pytest.mark.parametrize("answer,expected", [("ABX.", "ABX"), ("X$5X$", "X$5X"), (" $17$. ", "17"),
                                             ("a = b = 17", "17"), ("x+1 = 17 dollars.", "17"), ("3 and 4", "3 and 4")])
def test_clean_fallback(answer, expected):
    assert grading._clean_fallback(answer) == expected


@pytest.mark.parametrize("fn,name,text", [(extract_boxed, "extract_boxed", r"\boxed{1} " * 50),
                                          (extract_answer, "extract_answer", "The answer is 4. " * 50)])
def test_extractors_log_their_name_and_the_given_deadline(fn, name, text, caplog):
    with caplog.at_level(logging.WARNING, logger=grading.logger.name):
        assert fn(text, deadline_s=-1.0) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"grading: {name} passed its -1 s deadline") for m in messages), messages


@pytest.mark.parametrize("fn", [extract_boxed, extract_answer])
def test_extractors_take_only_strings_silently(fn, caplog):
    with caplog.at_level(logging.DEBUG, logger=grading.logger.name):
        assert fn(None) is None and fn(42) is None and fn([r"\boxed{1}"]) is None
    assert caplog.records == []


# _math_verify and _worker_main run inside the math-verify worker process; called here in-process so
# the mutation run's coverage sees them (the worker tests above check the same code through the pipe).
@pytest.mark.parametrize("pred,gold,verdict", [(r"\frac{1}{2}", "0.5", True), (r"2\sqrt{2}", r"\sqrt{8}", True),
                                               ("x+1", "1+x", True), ("3", "4", False), ("", "4", False),
                                               ("4", "", False), (r"\{1,2\}", r"\{2,1\}", True),
                                               # LaTeX extraction only: math-verify's default config would
                                               # fall back to its number patterns and read "( 3" as 3
                                               ("( 3", "3", False), ("3", "( 3", False)])
def test_math_verify_in_process(pred, gold, verdict):
    pytest.importorskip("math_verify")
    assert grading._math_verify(pred, gold) is verdict


def test_worker_main_in_process(monkeypatch, caplog):
    import io
    import json

    pytest.importorskip("math_verify")
    long_pred, long_gold = "boom" + "p" * 300, "g" * 300  # logged cut to 200 characters each
    lines = [["0.5", r"\frac{1}{2}"], ["3", "4"], [long_pred, long_gold], ["7", "7"]]
    stdin = io.TextIOWrapper(io.BytesIO(b"".join(json.dumps(p).encode() + b"\n" for p in lines)))
    out = io.BytesIO()
    real = grading._math_verify

    def flaky(pred, gold):
        if pred.startswith("boom"):
            raise RuntimeError("parser blew up")
        return real(pred, gold)

    monkeypatch.setattr(grading, "_math_verify", flaky)
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
    with caplog.at_level(logging.ERROR, logger=grading.logger.name):
        assert grading._worker_main() == 0
    assert out.getvalue() == b"ready\ntrue\nfalse\nfalse\ntrue\n"
    assert [r.getMessage() for r in caplog.records] == [f"math-verify failed on {long_pred[:200]!r} vs {'g' * 200!r}"]


def test_math_verify_off_the_main_thread_and_quiet(caplog):
    """Called from a thread (as eval's and verl's workers may), with math-verify's own signal-based
    timeouts off (the deadline is ours) and its "timeout disabled" warning silenced."""
    pytest.importorskip("math_verify")
    verdicts, errors = [], []

    def call():
        try:
            verdicts.append(grading._math_verify("0.5", r"\frac{1}{2}"))
            verdicts.append(grading._math_verify("0.5", "0.6"))
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    with caplog.at_level(logging.DEBUG):
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()
    assert errors == [] and verdicts == [True, False]
    assert not [r for r in caplog.records if r.name.startswith("math_verify") and r.levelno >= logging.WARNING]


# --- survivors of the recorded mutation run, killed (docs/mutation.md, "`grading.py`, judged after the recorded run") ---

def _letters(n: int) -> str:
    return "".join(chr(ord("a") + i % 26) for i in range(n))


@pytest.mark.parametrize("n", [1, 160, 161, 500])
def test_a_late_call_logs_its_input_whole_or_by_its_ends(n, caplog):
    """Up to 160 characters the input is logged as its repr; longer, as its length and 80-char ends."""
    text = _letters(n)
    shown = repr(text) if n <= 160 else f"{n} chars {text[:80]!r}…{text[-80:]!r}"
    with caplog.at_level(logging.WARNING, logger=grading.logger.name):
        assert extract_boxed(text, deadline_s=-1.0) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"grading: extract_boxed passed its -1 s deadline in the box search; graded None: {shown}"
    ]


def test_is_equivalent_logs_its_name_when_late_and_nothing_on_non_strings(caplog):
    with caplog.at_level(logging.DEBUG, logger=grading.logger.name):
        assert is_equivalent(None, "1") is False and is_equivalent("1", None) is False
        assert caplog.records == []  # not a string: "not equivalent" before any step, nothing logged
        assert is_equivalent("1.0", "1", deadline_s=-1.0) is False
    assert [r.getMessage() for r in caplog.records] == [
        "grading: is_equivalent passed its -1 s deadline in the normalization; graded False: '1.0', '1'"
    ]


def _fake_popen(code: str):
    """A stand-in for ``lifeline.popen`` that runs ``python -c code`` in its own session (as the
    lifeline does, so ``_Worker.kill``'s killpg reaches it) with the pipes ``_start`` asks for."""
    def popen(command, **kwargs):
        return subprocess.Popen([sys.executable, "-c", code], start_new_session=True, **kwargs)

    return popen


def test_a_worker_that_cannot_be_spawned_names_the_os_error(monkeypatch):
    from extra_cot import lifeline

    def raiser(command, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "python")

    monkeypatch.setattr(lifeline, "popen", raiser)
    worker = grading._Worker()
    with pytest.raises(grading.GraderUnavailableError) as info:
        worker._start()
    assert "did not start: FileNotFoundError: [Errno 2] No such file or directory: 'python'. " in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError) and worker.proc is None


def test_a_worker_whose_first_line_is_not_ready_is_refused_and_killed(monkeypatch):
    from extra_cot import lifeline

    monkeypatch.setattr(lifeline, "popen", _fake_popen("print('hello', flush=True); import time; time.sleep(60)"))
    worker = grading._Worker()
    with pytest.raises(grading.GraderUnavailableError) as info:
        worker._start()
    assert "did not start: no ready line within 120 s. " in str(info.value)
    assert worker.proc is None  # killed (kill() waits for it), not left sleeping


def test_a_worker_lost_mid_call_is_retried_once_and_logged(monkeypatch, caplog):
    """A worker that says ready and exits on its first request: the pool logs the loss, retries on
    a fresh one (which exits too), and the pair is graded wrong with the traceback logged."""
    from extra_cot import lifeline

    monkeypatch.setattr(lifeline, "popen", _fake_popen("import sys; print('ready', flush=True); sys.stdin.readline()"))
    monkeypatch.setattr(grading, "_pool", None)  # a fresh pool whose workers are the fake
    try:
        with caplog.at_level(logging.WARNING, logger=grading.logger.name):
            assert is_equivalent(r"\sqrt{8}", r"2\sqrt{2}") is False
    finally:
        grading._workers().close()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == (
        "grading: math-verify worker lost (EOFError('math-verify worker exited')); retrying on a fresh one"
    )
    assert messages[1].startswith("grading: is_equivalent failed on '\\\\sqrt{8}', '2\\\\sqrt{2}'")
    assert "EOFError: math-verify worker exited" in caplog.text  # the retry's traceback


@pytest.fixture
def piped_worker():
    """A ``_Worker`` reading a pipe this test writes to (``proc`` a stand-in: no process)."""
    import types

    r, w = os.pipe()
    worker = grading._Worker()
    worker.proc = types.SimpleNamespace(stdout=os.fdopen(r, "rb", buffering=0))
    try:
        yield worker, w
    finally:
        worker.proc.stdout.close()
        os.close(w)


def test_read_line_returns_one_line_and_keeps_the_rest(piped_worker):
    worker, w = piped_worker
    os.write(w, b"true\nfalse\n")
    assert worker._read_line(5.0) == b"true\n"
    assert worker._read_line(5.0) == b"false\n"


def test_read_line_joins_a_line_that_comes_in_pieces(piped_worker):
    worker, w = piped_worker
    os.write(w, b"tr")
    out = {}
    thread = threading.Thread(target=lambda: out.update(line=worker._read_line(60.0)))
    thread.start()
    _wait_for(lambda: worker._buf == b"tr", "the first piece read")
    os.write(w, b"ue\n")
    thread.join(timeout=60)
    assert out == {"line": b"true\n"}


def test_read_line_with_no_time_left_reads_nothing(piped_worker, monkeypatch):
    """``left <= 0``: with the clock frozen, a zero timeout returns None even with a line waiting."""
    worker, w = piped_worker
    os.write(w, b"true\n")
    with monkeypatch.context() as m:
        m.setattr(time, "monotonic", lambda: 1000.0)
        assert worker._read_line(0.0) is None
    assert worker._read_line(5.0) == b"true\n"


def test_a_reply_in_the_last_second_counts(piped_worker, monkeypatch):
    """A reply waiting with under a second left is read (clock frozen, so load cannot change the result)."""
    worker, w = piped_worker
    os.write(w, b"true\n")
    with monkeypatch.context() as m:
        m.setattr(time, "monotonic", lambda: 1000.0)
        assert worker._read_line(0.5) == b"true\n"


def test_the_pool_is_built_once_per_process(monkeypatch):
    """Workers start lazily, so building pools here starts no process."""
    monkeypatch.setattr(grading, "_pool", None)
    pool = grading._workers()
    assert grading._workers() is pool
    pool.pid = -1  # as a forked child sees its parent's pool
    assert grading._workers() is not pool and grading._workers().pid == os.getpid()
