"""The single resolver every behaviour dispatches its callbacks through.

A behaviour holds its callback module by *name* and asks ``resolve(name)`` for the module
before each callback, so a newly loaded version takes effect at the next message (OTP's
fully qualified call). The lookup is the code server's: the current version of a managed
module, or whatever ``sys.modules`` holds for any other module. Behaviours depend on the
code server; the code server knows nothing of behaviours.
"""

from __future__ import annotations

from types import ModuleType

from server.code_server import resolve

__all__ = ["module_name", "resolve"]


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
