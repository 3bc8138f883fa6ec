"""The stable module object that ``sys.modules`` holds for an application module.

Attribute reads go to the module's *current* version, so ``mod.f()`` (a qualified call)
always runs the newest code. The proxy keeps only the import system's own attributes
(``__name__``, ``__spec__``, ``__path__``...) and the proxies of its submodules, which the
import system sets on a package when a submodule is imported.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from server.errors import UnknownModule

if TYPE_CHECKING:
    from server.code_server._table import ModuleEntry

__all__ = ["ModuleProxy"]

_OWN = frozenset(
    {
        "__name__",
        "__spec__",
        "__loader__",
        "__path__",
        "__file__",
        "__package__",
        "__doc__",
        "__cached__",
    }
)


class ModuleProxy(types.ModuleType):
    """Forwards attribute access to the current version of one module."""

    __server_entry__: ModuleEntry

    def __init__(self, entry: ModuleEntry) -> None:
        super().__init__(entry.name)
        object.__setattr__(self, "__server_entry__", entry)

    def __getattr__(self, attr: str) -> Any:
        current = self.__server_entry__.current
        if current is None:
            raise AttributeError(
                f"module {self.__name__!r} has no current version (deleted)", name=attr, obj=self
            ) from UnknownModule(self.__name__, "has no current version")
        try:
            return getattr(current.module, attr)
        except AttributeError:
            raise AttributeError(
                f"module {self.__name__!r} has no attribute {attr!r}", name=attr, obj=self
            ) from None

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr in _OWN or isinstance(value, ModuleProxy):
            object.__setattr__(self, attr, value)
            return
        current = self.__server_entry__.current
        if current is None:
            raise AttributeError(f"module {self.__name__!r} has no current version")
        setattr(current.module, attr, value)

    def __dir__(self) -> list[str]:
        current = self.__server_entry__.current
        names = set(self.__dict__)
        if current is not None:
            names.update(dir(current.module))
        return sorted(names)

    def __repr__(self) -> str:
        current = self.__server_entry__.current
        where = current.path if current is not None else "deleted"
        return f"<module {self.__name__!r} (current version from {where!r})>"
