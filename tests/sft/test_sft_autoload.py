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


def test_other_llamafactory_version_warns_naming_the_supported_one(caplog):
    from importlib import metadata

    from extra_cot.sft import plugin

    real = metadata.version
    caplog.set_level("WARNING", logger="llamafactory.extra_cot")
    try:
        metadata.version = lambda name: "0.9.9" if name == "llamafactory" else real(name)
        assert plugin.check_version() == "0.9.9"
    finally:
        metadata.version = real
    assert any("supports LLaMA-Factory 0.9.5; found 0.9.9" in r.getMessage() for r in caplog.records)
    assert plugin.check_version() == "0.9.5"
