"""Activate the LLaMA-Factory adapter in every interpreter, without a fork or wrapper.

``extra_cot_autoload.pth`` (installed at the site-packages root) imports this module at start-up.
It only installs a ``sys.meta_path`` finder that waits for ``llamafactory.data`` and
``llamafactory.model``; right after each has executed, :func:`extra_cot.sft.plugin.register`
runs for that part (or, when an adapter module such as ``extra_cot.sft.processor`` was imported
first and imported LLaMA-Factory itself, right after that module has finished executing). So the
plugin is active in
``llamafactory-cli train/chat/export``, in torchrun ranks and in preprocessing workers, while an
interpreter that never imports LLaMA-Factory imports nothing more.

Switch off with ``EXTRA_COT_AUTOLOAD=0``. Interpreter start-up never fails because of it: the
``.pth`` line and :func:`install` only add the finder. Once LLaMA-Factory is imported, every
failure to register propagates, so ``import llamafactory.data`` / ``llamafactory.model`` (and
``llamafactory-cli``) stops instead of training with half the plugin (data part registered,
embedding part not): a refusal of an untested host as
:class:`extra_cot.hostcheck.UntestedHostError` naming the supported release and the overrides,
any other error as :class:`AutoloadError` naming the part, the cause and the fixes.

:func:`when_imported` reuses the finder for other adapters (the verl CPU platform patches vLLM's
layer utilities only in the processes that import vLLM); it is not affected by the switch.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType

from extra_cot.hostcheck import UntestedHostError

ENV_VAR = "EXTRA_COT_AUTOLOAD"
#: module -> the plugin part registered right after it is imported (extra_cot.sft.plugin.register)
TARGETS = {"llamafactory.data": "data", "llamafactory.model": "model"}
logger = logging.getLogger("extra_cot.autoload")


class AutoloadError(RuntimeError):
    """Registering a part of the LLaMA-Factory plugin failed for a reason other than the host version."""

#: module -> callbacks run with the module right after it executes (:func:`when_imported`)
_HOOKS: dict[str, list[Callable[[ModuleType], None]]] = {}
#: Modules that registering imports (extra_cot.sft.plugin, .processor, .template, .embedding).
#: When one of them is being imported and itself imports ``llamafactory.data`` (``import
#: extra_cot.sft.processor`` first), registering at once would read it half-initialized: the
#: part waits until the outermost of them has finished executing.
ADAPTER_PREFIX = "extra_cot.sft."
_importing: list[str] = []  # adapter modules executing now, outermost first
_pending: list[str] = []  # parts whose target was imported while an adapter module was executing


def _register(part: str) -> None:
    try:
        from extra_cot.sft.plugin import register

        register(part)
    except UntestedHostError as err:  # fail closed, loudly: the plugin must not half-apply
        raise UntestedHostError(f"{err} (or {ENV_VAR}=0 to run LLaMA-Factory without extra-cot)") from None
    except Exception as err:  # fail closed: a half-applied plugin trains the wrong model silently
        module = next(name for name, p in TARGETS.items() if p == part)
        raise AutoloadError(
            f"extra-cot: registering the LLaMA-Factory plugin part {part!r} (right after {module} was "
            f"imported) failed: {type(err).__name__}: {err}. Fix: reinstall extra-cot with its pinned "
            f"LLaMA-Factory (pip install 'extra-cot[sft]'), or set {ENV_VAR}=0 to run LLaMA-Factory "
            "without extra-cot (then call extra_cot.sft.plugin.register() yourself if you need it)"
        ) from err


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, fullname: str) -> None:
        self.inner, self.fullname = inner, fullname

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        if self.fullname.startswith(ADAPTER_PREFIX):
            _exec_adapter(self.inner, module, self.fullname)
            return
        self.inner.exec_module(module)
        if self.fullname in TARGETS:
            if _importing:
                _pending.append(TARGETS[self.fullname])  # registered when the adapter module is whole
            else:
                _register(TARGETS[self.fullname])
        for hook in _HOOKS.get(self.fullname, ()):
            hook(module)  # an adapter's own check (e.g. hostcheck) must be able to stop the process


def _exec_adapter(inner: importlib.abc.Loader, module: ModuleType, fullname: str) -> None:
    """Execute an adapter module; when the outermost one is done, register the parts it deferred."""
    _importing.append(fullname)
    try:
        inner.exec_module(module)
    except BaseException:
        if len(_importing) == 1:
            _pending.clear()  # the import failed: that error is the one to see
        raise
    finally:
        _importing.pop()
    if _importing:
        return
    while _pending:
        _register(_pending.pop(0))

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the real loader
        return getattr(self.inner, name)


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds the :data:`TARGETS` through the other finders and wraps their loaders."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in TARGETS and fullname not in _HOOKS and not fullname.startswith(ADAPTER_PREFIX):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


def _ensure_finder() -> None:
    if not any(isinstance(f, PostImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PostImportFinder())


def when_imported(name: str, hook: Callable[[ModuleType], None]) -> None:
    """Run ``hook(module)`` right after module ``name`` executes (now, if it already has)."""
    if name in sys.modules:
        hook(sys.modules[name])
        return
    _HOOKS.setdefault(name, []).append(hook)
    _ensure_finder()


def install() -> bool:
    """Install the finder once; parts whose module is already loaded register at once."""
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    for name, part in TARGETS.items():
        if name in sys.modules:
            _register(part)
    _ensure_finder()
    return True


try:
    install()
except (AutoloadError, UntestedHostError):
    raise  # LLaMA-Factory was already imported and registering failed: never run half-applied
except Exception:  # adding the finder itself must never break the interpreter
    logger.exception("extra-cot: installing the autoload hook failed")
