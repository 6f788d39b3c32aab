"""Idempotent registration into verl's registries (which raise on a second, different object)."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


def replace_stale(registry: MutableMapping[str, object], name: str) -> Callable[[T], T]:
    """Drop ``registry[name]`` when it is an older copy of the same object (a re-imported module).

    Put it *below* the host's register decorator: it runs first, so the host's own duplicate
    check only fires for a genuinely different object of another package.
    """

    def decorator(obj: T) -> T:
        old = registry.get(name)
        same = (
            old is not None
            and old is not obj
            and getattr(old, "__module__", None) == getattr(obj, "__module__", None)
            and getattr(old, "__qualname__", None) == getattr(obj, "__qualname__", None)
        )
        if same:
            logger.debug("replacing stale registration %r from a re-imported %s", name, obj.__module__)
            del registry[name]
        return obj

    return decorator
