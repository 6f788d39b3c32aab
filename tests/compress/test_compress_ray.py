"""``extra-cot compress --ray`` on a REAL local Ray cluster (``ray.init(num_cpus=2)``, Ray Data,
an actor pool of 2 scorers): the same bytes as the single-process run, and resume."""

from __future__ import annotations

import json

import pytest

from extra_cot.cli import main as cli_main

from .conftest import GSM8K_ROWS

#: GSM8K-style rows written for this test: numbers vary so every row compresses differently; one
#: row has no worked solution (skip log: empty_cot).
ROWS = [
    *GSM8K_ROWS,
    *({"question": f"Ann has {a} pens and buys {b} boxes of {c} pens. How many pens does she have?",
       "answer": f"The boxes hold {b} * {c} = <<{b}*{c}={b * c}>>{b * c} pens.\n"
                 f"So she has {a} + {b * c} = <<{a}+{b * c}={a + b * c}>>{a + b * c} pens in total.\n"
                 f"#### {a + b * c}"} for a, b, c in ((3, 2, 5), (10, 4, 6), (7, 3, 9), (12, 5, 8), (1, 9, 9))),
    {"question": "What is 6 times 7?", "answer": "#### 42"},
]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def _argv(inp, out, tok, *extra):
    return ["compress", "--input", str(inp), "--output", str(out), "--input-format", "gsm8k",
            "--scorer", "heuristic", "--tokenizer", str(tok), *extra]


def _stats(text: str) -> dict[str, str]:
    return dict(line.rsplit(None, 1) for line in text.splitlines() if line.strip())


@pytest.mark.slow
def test_ray_output_equals_single_process_and_resumes(tmp_path, tiny_model_dir, ray_cluster, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    ray_args = ("--ray", "--num-workers", "2", "--batch-size", "2")

    one = tmp_path / "one" / "c.jsonl"
    assert cli_main(_argv(inp, one, tiny_model_dir)) == 0
    stats_one = _stats(capsys.readouterr().out)
    many = tmp_path / "ray" / "c.jsonl"
    assert cli_main(_argv(inp, many, tiny_model_dir, *ray_args)) == 0
    stats_ray = _stats(capsys.readouterr().out)

    assert many.read_bytes() == one.read_bytes()
    skip_one = one.with_name("c.jsonl.skipped.jsonl").read_bytes()
    assert many.with_name("c.jsonl.skipped.jsonl").read_bytes() == skip_one
    assert b"empty_cot" in skip_one
    assert stats_ray == stats_one and stats_one["written"] == str(len(ROWS) - 1)

    # resume: a partial Ray run, a torn last line (crash), then a full rerun writes only the rest
    part = tmp_path / "part" / "c.jsonl"
    assert cli_main(_argv(inp, part, tiny_model_dir, *ray_args, "--limit", "3")) == 0
    capsys.readouterr()
    first = part.read_bytes()
    assert first.count(b"\n") == 3
    with open(part, "ab") as fh:
        fh.write(b'{"key": "torn')
    assert cli_main(_argv(inp, part, tiny_model_dir, *ray_args)) == 0
    stats_rerun = _stats(capsys.readouterr().out)
    assert part.read_bytes() == one.read_bytes() and part.read_bytes().startswith(first)
    assert stats_rerun["already_done"] == "3" and stats_rerun["written"] == str(len(ROWS) - 1 - 3)
    rows = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    assert len({r["key"] for r in rows}) == len(rows)

    # a rerun with nothing left starts no work and writes nothing
    assert cli_main(_argv(inp, part, tiny_model_dir, *ray_args)) == 0
    assert part.read_bytes() == one.read_bytes()
    assert _stats(capsys.readouterr().out)["already_done"] == str(len(ROWS))


def test_runtime_env_parses_json_and_files_and_names_bad_values(tmp_path):
    from extra_cot.compress.ray_compress import RayOptions

    assert RayOptions().runtime_env_dict() is None
    assert RayOptions(runtime_env='{"env_vars": {"A": "1"}}').runtime_env_dict() == {"env_vars": {"A": "1"}}
    f = tmp_path / "env.yaml"
    f.write_text("py_modules:\n  - /src/plugins/extra_cot\n")
    assert RayOptions(runtime_env=str(f)).runtime_env_dict() == {"py_modules": ["/src/plugins/extra_cot"]}
    with pytest.raises(ValueError, match="neither inline JSON"):
        RayOptions(runtime_env=str(tmp_path / "missing.json"))
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n")
    with pytest.raises(ValueError, match="mapping"):
        RayOptions(runtime_env=str(listing))
    with pytest.raises(ValueError, match="not valid JSON/YAML"):
        RayOptions(runtime_env='{"pip": [}')


def test_a_worker_without_the_package_becomes_an_error_naming_the_fix():
    from extra_cot.compress.ray_compress import RayNodeSetupError, explain_worker_error

    ray_said = RuntimeError("ray.exceptions.RayTaskError(ModuleNotFoundError): ...\nModuleNotFoundError: No module named 'extra_cot'")
    err = explain_worker_error(ray_said)
    assert isinstance(err, RayNodeSetupError)
    assert "--runtime-env" in str(err) and "extra-cot[compress] on every node" in str(err)
    other = ValueError("something else")
    assert explain_worker_error(other) is other


@pytest.mark.slow
def test_ray_output_equals_single_process_with_a_model_scorer(tmp_path, tiny_model_dir, ray_cluster, capsys):
    """The ``lm`` scorer (a real causal LM: the tiny model) through 2 Ray actors writes the single
    process's bytes: at ``--score-batch-size 1`` (default) every row is scored alone in both paths,
    whatever rows Ray Data puts in one ``map_batches`` call, so no padding or batch shape differs."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    lm = ("--scorer", "lm", "--scorer-model", str(tiny_model_dir))
    one = tmp_path / "one" / "c.jsonl"
    assert cli_main([*_argv(inp, one, tiny_model_dir), *lm]) == 0
    many = tmp_path / "ray" / "c.jsonl"
    assert cli_main([*_argv(inp, many, tiny_model_dir), *lm, "--ray", "--num-workers", "2", "--batch-size", "3"]) == 0
    capsys.readouterr()
    assert many.read_bytes() == one.read_bytes()
    heuristic = tmp_path / "h" / "c.jsonl"  # and the model really scored: its choice is not the heuristic's
    assert cli_main(_argv(inp, heuristic, tiny_model_dir)) == 0
    assert heuristic.read_bytes() != one.read_bytes()
