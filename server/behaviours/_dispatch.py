"""The single resolver every behaviour dispatches its callbacks through.

A behaviour holds its callback module by *name* and asks ``resolve(name)`` for the module
before each callback, so a newly loaded version takes effect at the next message (OTP's
fully qualified call). The code server installs its own lookup with ``set_resolver``;
until then a module is whatever ``sys.modules`` holds.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType

__all__ = ["module_name", "resolve", "set_resolver"]

Resolver = Callable[[str], ModuleType]


def _default_resolver(name: str) -> ModuleType:
    module = sys.modules.get(name)
    if module is None:
        module = importlib.import_module(name)
    return module


_resolver: Resolver = _default_resolver


def resolve(name: str) -> ModuleType:
    """The module whose callbacks run now for ``name`` (its current version)."""
    return _resolver(name)


def set_resolver(resolver: Resolver | None) -> None:
    """Install the code server's lookup (None restores the plain ``sys.modules`` one)."""
    global _resolver
    _resolver = resolver if resolver is not None else _default_resolver


def module_name(module: ModuleType | str) -> str:
    """The name a behaviour keeps for its callback module.

    Raises:
        TypeError: ``module`` is neither a module nor a module name.
    """
    if isinstance(module, str):
        return module
    if isinstance(module, ModuleType):
        return module.__name__
    raise TypeError(f"a callback module is a module or its dotted name, not {module!r}")
