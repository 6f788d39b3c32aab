"""cliargs: a dataclass is its own CLI; the eval and demo parsers keep every flag name."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import pytest

from extra_cot.cliargs import (
    UNSET,
    add_dataclass_arguments,
    dataclass_from_args,
    nested,
    option,
    unset_fields,
)


@dataclass
class _Inner:
    top_p: float = option(default=0.9, group="sampling")
    flag: bool = option(default=False, group="sampling", help="a switch")


@dataclass
class _Outer:
    out: str = option("--out_dir", "--out-dir", group="run")
    items: list[int] = option("--item", parse=int, cli_default=[], action="append", group="run")
    words: list[str] = option(parse=lambda s: s.split(","), cli_default="a,b", group="run")
    size: int = option(default=4, cli_default=UNSET, group="run")
    derived: int = 7  # no flag
    inner: _Inner = nested(_Inner)


def _parse(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser()
    groups = add_dataclass_arguments(p, _Outer, group_order=("sampling",))
    assert list(groups) == ["sampling", "run"]
    return p, p.parse_args(argv)


def test_round_trip_with_aliases_parse_append_unset_and_nesting():
    _, args = _parse(["--out-dir", "o", "--item", "3", "--item", "5", "--top-p", "0.5", "--flag"])
    cfg = dataclass_from_args(_Outer, args)
    assert asdict(cfg) == {
        "out": "o",
        "items": [3, 5],
        "words": ["a", "b"],
        "size": 4,
        "derived": 7,
        "inner": {"top_p": 0.5, "flag": True},
    }
    assert unset_fields(_Outer, args) == {"size"}
    assert dataclass_from_args(_Outer, args, size=9, derived=1).size == 9
    _, args = _parse(["--out_dir", "o", "--size", "2", "--words", "x"])
    assert (dataclass_from_args(_Outer, args).size, dataclass_from_args(_Outer, args).words) == (2, ["x"])


def test_field_without_default_is_required_and_non_flags_are_absent():
    p, _ = _parse(["--out_dir", "o"])
    with pytest.raises(SystemExit):
        p.parse_args([])
    assert "--derived" not in p.format_help()


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_eval_and_demo_keep_every_flag_name():
    from extra_cot.demo.config import parser as demo_parser
    from extra_cot.eval.cli import _parser as eval_parser

    # supersets: other issues add flags (e.g. --endpoints); none of these may disappear
    assert _flags(eval_parser()) >= {
        "-h",
        "--help",
        "--host",
        "--port",
        "--model",
        "--output_dir",
        "--output-dir",
        "--dataset",
        "--ratios",
        "--base-run",
        "--limit",
        "--n-samples",
        "--regrade",
        "--temperature",
        "--top-p",
        "--max-tokens",
        "--skip-special-tokens",
        "--seed",
        "--extra-body",
        "--concurrency",
        "--request-timeout",
        "--retries",
        "--tokenizer",
    }
    assert _flags(demo_parser()) >= {
        "--out",
        "--tiny",
        "--list",
        "--force",
        "--only",
        "--sft",
        "--rl",
        "--test",
        "--seed",
        "--gsm8k-train",
        "--gsm8k-test",
        "--formula-bonus",
        "--epochs",
        "--max-steps",
        "--batch-size",
        "--learning-rate",
        "--sft-config",
        "--max-tokens",
        "--concurrency",
        "--n-samples",
        "--base-server",
        "--n-gpus",
    }


def test_comma_subset_keeps_the_choices_order_and_names_the_flag_on_a_bad_name():
    from extra_cot.cliargs import comma_subset

    parse = comma_subset("--pick", ("a", "b", "c"), keywords=("none",))
    assert parse("c, a,,a") == ["a", "c"]
    assert parse("none") == ["none"]
    for bad in ("", "d", "a,none", " , "):
        with pytest.raises(ValueError, match=r"--pick .*none or a comma list of \['a', 'b', 'c'\]"):
            parse(bad)
    with pytest.raises(ValueError, match=r"^--arms 'x': use a comma list"):
        comma_subset("--arms", ("chrpo", "grpo"))("x")
