"""Activation in fresh interpreters: the .pth hook, the off switch, the version warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llamafactory")
REPO = Path(__file__).resolve().parents[2]
CHECK = (
    "import sys, llamafactory.data.template as t, llamafactory.data.converter as c, llamafactory.data.loader as l;"
    "print('qwen3_comp' in t.TEMPLATES, 'extra_cot' in c.DATASET_CONVERTERS,"
    " getattr(l._get_dataset_processor, '__extra_cot__', False))"
)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=full_env, timeout=300)


def _last(proc) -> list[str]:
    """Words of the last stdout line (LLaMA-Factory logs to stdout too)."""
    lines = proc.stdout.strip().splitlines()
    return lines[-1].split() if lines else []


def test_pth_file_is_one_tolerant_import_line():
    lines = (REPO / "plugins" / "extra_cot_autoload.pth").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("import ")
    # a broken target must not break the interpreter: run the line with the module unimportable
    code = f"import sys; sys.modules['extra_cot._autoload'] = None; exec({lines[0]!r}); print('alive')"
    proc = _run(code)
    assert proc.returncode == 0 and "alive" in proc.stdout and "autoload skipped" in proc.stderr


@pytest.mark.slow
def test_plugin_active_in_a_fresh_interpreter():
    proc = _run(CHECK)
    assert _last(proc) == ["True", "True", "True"], proc.stderr[-2000:]
    proc = _run(CHECK + "; print('llamafactory.model' in sys.modules)")
    assert _last(proc) == ["False"]  # the data part alone does not import the model stack
    proc = _run("import llamafactory.model.patcher as p, llamafactory.model.loader as l;"
                "print(getattr(p.resize_embedding_layer, '__extra_cot__', False),"
                " getattr(l.patch_tokenizer, '__extra_cot__', False))")
    assert _last(proc) == ["True", "True"], proc.stderr[-2000:]


@pytest.mark.slow
def test_env_var_switches_it_off():
    proc = _run(CHECK, EXTRA_COT_AUTOLOAD="0")
    assert _last(proc) == ["False", "False", "False"], proc.stderr[-2000:]


def test_interpreter_without_llamafactory_import_is_untouched():
    proc = _run("import sys, json; print('llamafactory' in sys.modules, 'torch' in sys.modules,"
                " any(type(f).__name__ == 'PostImportFinder' for f in sys.meta_path))")
    assert _last(proc) == ["False", "False", "True"], proc.stderr[-2000:]


@pytest.mark.slow
def test_hook_installed_after_llamafactory_was_imported_registers_at_once():
    proc = _run("import llamafactory.data; import extra_cot._autoload as a; a.install();" + CHECK,
                EXTRA_COT_AUTOLOAD="0")
    assert _last(proc) == ["False", "False", "False"]
    code = ("import os; import llamafactory.data; os.environ['EXTRA_COT_AUTOLOAD'] = '1';"
            "import extra_cot._autoload as a; a.install();" + CHECK)
    proc = _run(code, EXTRA_COT_AUTOLOAD="0")
    assert _last(proc) == ["True", "True", "True"], proc.stderr[-2000:]


def _fake(dist: str, version: str) -> str:
    """Code that makes importlib.metadata report ``version`` for ``dist`` (before anything imports it)."""
    return (f"import importlib.metadata as m; _real = m.version;"
            f"m.version = lambda d: {version!r} if d == {dist!r} else _real(d);")


def test_other_llamafactory_version_is_refused_naming_the_supported_one_and_the_override():
    proc = _run(_fake("llamafactory", "0.9.9") + CHECK, EXTRA_COT_ALLOW_UNTESTED_HOST="")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("extra_cot.hostcheck.UntestedHostError"), proc.stderr[-2000:]
    for needle in ("supports llamafactory 0.9.5, found 0.9.9", "EXTRA_COT_ALLOW_UNTESTED_HOST=1", "EXTRA_COT_AUTOLOAD=0"):
        assert needle in last


def test_other_llamafactory_version_runs_with_the_override_and_warns():
    proc = _run(_fake("llamafactory", "0.9.9") + CHECK, EXTRA_COT_ALLOW_UNTESTED_HOST="1")
    assert _last(proc) == ["True", "True", "True"], proc.stderr[-2000:]
    assert "found 0.9.9" in proc.stderr + proc.stdout and "continuing: EXTRA_COT_ALLOW_UNTESTED_HOST=1" in (
        proc.stderr + proc.stdout)


def test_refusal_does_not_break_interpreter_start_up():
    # the .pth hook runs at every start-up; with an untested LLaMA-Factory only its import refuses
    proc = _run(_fake("llamafactory", "0.9.9") + "import extra_cot._autoload, json; print('alive')")
    assert proc.returncode == 0 and _last(proc) == ["alive"], proc.stderr[-2000:]


def _failing_plugin(monkeypatch, error: Exception) -> None:
    """Replace extra_cot.sft.plugin with one whose register() raises ``error``."""
    import types

    fake = types.ModuleType("extra_cot.sft.plugin")

    def register(part):
        raise error

    fake.register = register
    monkeypatch.setitem(sys.modules, "extra_cot.sft.plugin", fake)


@pytest.mark.parametrize("part", ["data", "model"])
def test_registration_failure_raises_naming_part_cause_and_fix(monkeypatch, part):
    from extra_cot import _autoload

    _failing_plugin(monkeypatch, OSError("disk gone"))
    with pytest.raises(_autoload.AutoloadError) as info:
        _autoload._register(part)
    message = str(info.value)
    for needle in (repr(part), "OSError: disk gone", "pip install", "EXTRA_COT_AUTOLOAD=0"):
        assert needle in message
    assert isinstance(info.value.__cause__, OSError)


def test_registration_failure_stops_the_llamafactory_import():
    """In a fresh interpreter: ``import llamafactory.data`` fails instead of running half-applied."""
    code = ("import sys, types; import extra_cot.sft;"
            "m = types.ModuleType('extra_cot.sft.plugin');"
            "m.register = lambda part: (_ for _ in ()).throw(OSError('disk gone'));"
            "sys.modules['extra_cot.sft.plugin'] = m;"
            "import llamafactory.data; print('imported')")
    proc = _run(code)
    assert proc.returncode != 0 and "imported" not in proc.stdout, proc.stdout[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("extra_cot._autoload.AutoloadError") and "OSError: disk gone" in last, proc.stderr[-2000:]


@pytest.mark.parametrize("first", ["extra_cot.sft.processor", pytest.param("extra_cot.sft.template", marks=pytest.mark.slow)])
def test_importing_the_adapter_before_llamafactory_registers_it(first):
    """``import extra_cot.sft.processor`` first: it imports ``llamafactory.data`` half-way through its
    own execution, so the data part waits until the module is whole, then registers (it raised
    AutoloadError, reading the half-initialized module, before)."""
    proc = _run(f"import {first};" + CHECK)
    assert proc.returncode == 0 and _last(proc) == ["True", "True", "True"], proc.stderr[-2000:]
