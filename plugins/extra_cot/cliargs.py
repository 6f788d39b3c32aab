"""Command-line parsers built from config dataclasses (as TRL's ``HfArgumentParser`` does).

A field is spelled once, in its dataclass, with :func:`option` metadata (flag names, help, group,
a string parser); :func:`add_dataclass_arguments` turns the fields into ``argparse`` arguments
and :func:`dataclass_from_args` builds the dataclass back from the parsed namespace. A field
declared with :func:`nested` holds another such dataclass whose options join the same parser
(e.g. the eval sampling options).
Fields without :func:`option` metadata are not flags (they are derived, e.g. ``--tiny`` sizes).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

_META = "extra_cot.cli"
#: Marks an argparse default as "the user left it unset" (resolved by the caller, e.g. --tiny sizes).
UNSET: Any = None
#: ``cli_default`` not given: argparse uses the field's own default.
_FIELD_DEFAULT: Any = object()


#: What a command reports as one line and exit status 2 instead of a traceback: bad input data or
#: options (ValueError; UnicodeDecodeError is one) and paths the user gave that cannot be used
#: (OSError: missing, unreadable, unwritable, a folder where a file is expected, or the reverse).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def user_error_line(err: BaseException) -> str:
    """One line for a :data:`USER_ERRORS` exception, naming the path of an OSError."""
    if isinstance(err, FileExistsError) and err.filename is not None:  # os.mkdir of a folder to write into
        return f"{err.filename}: a file is in the way (a folder was expected there)"
    if isinstance(err, OSError) and err.filename is not None:
        paths = " -> ".join(str(p) for p in (err.filename, err.filename2) if p is not None)
        return f"{paths}: {err.strerror or type(err).__name__}"
    return " ".join(str(err).split("\n")) or type(err).__name__


def non_negative_int(text: str) -> int:
    """argparse ``type`` of a count such as ``--limit``: a whole number >= 0 (``-1`` is refused,
    not read as "all but the last row")."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number >= 0")
    return value


def comma_subset(flag: str, choices: typing.Sequence[str], keywords: typing.Sequence[str] = ()) -> Callable[[str], list[str]]:
    """A ``parse`` for a comma list of ``choices`` (e.g. ``--arms grpo,chrpo``): the names in the
    order of ``choices``, duplicates and blanks dropped. A lone keyword (``auto``, ``none``) passes
    as ``[keyword]``; anything else raises ValueError naming ``flag`` and what it accepts."""

    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        if len(names) == 1 and names[0] in keywords:
            return names
        bad = [t for t in names if t not in choices]
        if bad or not names:
            accepted = f"{', '.join(keywords)} or " if keywords else ""
            raise ValueError(f"{flag} {text!r}: use {accepted}a comma list of {list(choices)}")
        return [c for c in choices if c in names]

    return parse


@dataclasses.dataclass(frozen=True)
class Option:
    """How one dataclass field appears on the command line."""

    flags: tuple[str, ...] = ()  # default: --field-name
    help: str | None = None
    group: str | None = None
    parse: Callable[[str], Any] | None = None  # str -> value, applied after argparse (per item if append)
    cli_default: Any = _FIELD_DEFAULT  # argparse default if not the field's (UNSET, a raw string)
    argparse_kwargs: dict = dataclasses.field(default_factory=dict)  # metavar, choices, action, ...


def option(
    *flags: str,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    help: str | None = None,
    group: str | None = None,
    parse: Callable[[str], Any] | None = None,
    cli_default: Any = _FIELD_DEFAULT,
    **argparse_kwargs: Any,
) -> Any:
    """A dataclass field that is also a command-line option (see :class:`Option`).

    ``flags`` default to ``--field-name``; a field without a default is a required flag unless
    ``cli_default`` gives argparse one (e.g. the raw string ``parse`` turns into the value).
    """
    meta = {_META: Option(flags, help, group, parse, cli_default, argparse_kwargs)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def nested(factory: Callable[[], Any]) -> Any:
    """A field holding another option dataclass whose options join the same parser."""
    return dataclasses.field(default_factory=factory, metadata={_META: "nested"})


def _scalar_type(hint: Any) -> Any:
    """``int | None`` -> ``int``; other hints unchanged."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def _walk(cls: type) -> typing.Iterator[tuple[dataclasses.Field, Any, Any]]:
    """``(field, option-or-"nested", type hint)`` for each field of ``cls`` carrying CLI metadata."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is not None:
            yield f, meta, hints[f.name]


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, group_order: tuple[str, ...] = (), groups: dict | None = None
) -> dict[str, Any]:
    """Add one argument per option field of ``cls`` (recursively); return the groups by title.

    Groups named in ``group_order`` come first in ``--help``, the others in the order their first
    field appears. The caller adds CLI-only flags (``--regrade``, ``--list``) to the returned groups.
    """
    groups = {} if groups is None else groups
    for title in group_order:
        groups.setdefault(title, parser.add_argument_group(title))
    for f, opt, hint in _walk(cls):
        if opt == "nested":
            add_dataclass_arguments(parser, hint, groups=groups)
            continue
        target = parser
        if opt.group is not None:
            if opt.group not in groups:
                groups[opt.group] = parser.add_argument_group(opt.group)
            target = groups[opt.group]
        kwargs: dict[str, Any] = {"dest": f.name, "help": opt.help, **opt.argparse_kwargs}
        scalar = _scalar_type(hint)
        if opt.cli_default is not _FIELD_DEFAULT:
            kwargs.setdefault("default", opt.cli_default)
        elif f.default is not dataclasses.MISSING:
            kwargs.setdefault("default", f.default)
        elif f.default_factory is dataclasses.MISSING:
            kwargs.setdefault("required", True)
        if scalar is bool and "action" not in kwargs:
            kwargs["action"] = "store_true"
        elif opt.parse is None and scalar in (int, float, str) and "action" not in kwargs:
            kwargs.setdefault("type", scalar)
        flags = opt.flags or (f"--{f.name.replace('_', '-')}",)
        if kwargs.get("action") not in ("store_true", "store_false") and "choices" not in kwargs:
            kwargs.setdefault("metavar", flags[0].lstrip("-").replace("-", "_").upper())
        target.add_argument(*flags, **kwargs)
    return groups


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from parsed ``args``: apply each option's ``parse``, skip unset values.

    A value left at :data:`UNSET` (``None``) falls back to the field's default; ``overrides``
    (field name -> value) win over both, for fields the caller resolves itself.
    """
    return cls(**{**_values(cls, args), **overrides})


def _values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f, opt, hint in _walk(cls):
        if opt == "nested":
            values[f.name] = dataclass_from_args(hint, args)
            continue
        value = getattr(args, f.name)
        if value is UNSET:
            continue
        if opt.parse is not None:
            value = [opt.parse(v) for v in value] if isinstance(value, list) else opt.parse(value)
        values[f.name] = value
    return values


def unset_fields(cls: type, args: argparse.Namespace) -> set[str]:
    """Names of option fields of ``cls`` (not nested) the user left at :data:`UNSET`."""
    return {f.name for f, opt, _ in _walk(cls) if opt != "nested" and getattr(args, f.name) is UNSET}
