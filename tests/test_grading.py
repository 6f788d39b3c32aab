"""The shared grader: extraction, equivalence, hostile inputs, thread safety, bounded time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from extra_cot.grading import extract_answer, extract_boxed, grade, is_equivalent

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


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_are_bounded_and_never_raise(text, tmp_path):
    start = time.perf_counter()
    assert is_equivalent(text, "1") is False
    assert is_equivalent("1", text) is False
    extract_boxed(text)
    extract_answer(text)
    grade(f"\\boxed{{{text}}}", "1")
    # The guards keep sympy away from these: well under the 3 s math-verify deadline.
    assert time.perf_counter() - start < 3.0


def test_model_output_is_never_executed():
    marker = "/tmp/extra_cot_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    for text in HOSTILE:
        grade(f"\\boxed{{{text}}}", "0")
        is_equivalent(text, "0")
    assert not os.path.exists(marker)


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
#: input filter keeps them from math-verify; these tests hand them to the deadline path directly.
SLOW_FOR_MATH_VERIFY = [r"2^{2^{2^{2^{2^{2}}}}}", r"10^{10^{10^{10^{10}}}}", "9" * 100_000]


def _warm_workers():
    from extra_cot import grading

    for _ in range(grading._POOL_WORKERS):  # start every worker: start-up is not the deadline's business
        assert grading._math_verify_with_deadline(r"2\sqrt{2}", r"\sqrt{8}") is True


def test_deadline_bounds_a_slow_math_verify(monkeypatch):
    """A comparison that outlives the deadline is graded wrong and returns on time."""
    from extra_cot import grading

    _warm_workers()
    monkeypatch.setattr(grading, "MATH_VERIFY_DEADLINE_S", 0.5)
    start = time.perf_counter()
    assert grading._math_verify_with_deadline(SLOW_FOR_MATH_VERIFY[0], "1") is False
    assert time.perf_counter() - start < 1.5


def test_a_stuck_comparison_does_not_block_later_calls(monkeypatch):
    from extra_cot import grading

    monkeypatch.setattr(grading, "MATH_VERIFY_DEADLINE_S", 0.3)
    for _ in range(grading._POOL_WORKERS + 1):  # more stuck calls than workers
        assert grading._math_verify_with_deadline(SLOW_FOR_MATH_VERIFY[0], "1") is False
    monkeypatch.setattr(grading, "MATH_VERIFY_DEADLINE_S", 3.0)
    assert grading.is_equivalent(r"2\sqrt{2}", r"\sqrt{8}") is True


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
def test_late_calls_leave_nothing_burning_cpu(monkeypatch):
    """Hostile answers in a loop: no thread or process keeps computing after its deadline."""
    from extra_cot import grading

    _warm_workers()
    threads_before = threading.active_count()
    monkeypatch.setattr(grading, "MATH_VERIFY_DEADLINE_S", 0.3)
    for i in range(8):
        assert grading._math_verify_with_deadline(SLOW_FOR_MATH_VERIFY[i % 3], "1") is False
        assert len(_children(os.getpid())) <= grading._POOL_WORKERS
    assert threading.active_count() <= threads_before
    kids = _descendants(os.getpid())
    own, theirs = time.process_time(), {k: _cpu_s(k) for k in kids}
    time.sleep(1.0)
    burned = time.process_time() - own + sum(_cpu_s(k) - c for k, c in theirs.items())
    assert burned < 0.25, f"{burned:.2f} CPU-seconds burned in 1 s of idling after 8 late calls"
    monkeypatch.setattr(grading, "MATH_VERIFY_DEADLINE_S", 3.0)
    assert grading.is_equivalent(r"2\sqrt{2}", r"\sqrt{8}") is True  # still grading


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
        assert grading._math_verify_with_deadline(r"2\sqrt{2}", r"\sqrt{8}") is True


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
        for needle in ("did not start", "math-verify==0.9.0", "PYTHONPATH", sys.executable):
            assert needle in str(info.value)
        with pytest.raises(grading.GraderUnavailableError):
            is_equivalent(r"\sqrt{8}", r"2\sqrt{2}")
        assert is_equivalent("4", "4.0") is True  # the exact/numeric path needs no worker
    finally:
        grading._workers().close()


def test_grader_workers_exit_with_their_parent(tmp_path):
    """A killed parent leaves no math-verify worker behind, even one busy on a hostile input."""
    code = (
        "import os, sys, threading; from extra_cot import grading; grading.MATH_VERIFY_DEADLINE_S = 600;"
        "threading.Thread(target=grading._math_verify_with_deadline, args=(sys.argv[1], '1'), daemon=True).start();"
        "import time; time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, SLOW_FOR_MATH_VERIFY[0]])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_descendants(parent.pid)) < 2:
            time.sleep(0.2)
        workers = _descendants(parent.pid)  # the lifeline and its math-verify worker
        assert len(workers) == 2, "the parent started no worker"
        time.sleep(3.0)  # the worker is now inside sympy
        assert max(_cpu_s(w) for w in workers) > 0.5
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}") and _state(w) != "Z"]
    assert not alive


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
