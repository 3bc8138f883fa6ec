"""The stable module object that ``sys.modules`` holds for an application module.

Attribute reads go to the module's *current* version, so ``mod.f()`` (a qualified call)
always runs the newest code. The proxy keeps only the import system's own attributes
(``__name__``, ``__spec__``, ``__path__``...) and the proxies of its submodules, which the
import system sets on a package when a submodule is imported.

Two things make the proxy stand in for the version behind it:

- ``proxy.__dict__`` is the current version's namespace. Libraries that resolve names
  lazily through ``sys.modules[cls.__module__].__dict__`` (``typing.get_type_hints``,
  pydantic's deferred model building, ``from mod import *``) see the current globals.
- A package's proxy hands out its submodules' proxies, never a fixed version, even when
  the submodule was imported while the package body ran (the import system then set it
  on that version only) and after the package was loaded again without re-importing it.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from server.errors import UnknownModule

if TYPE_CHECKING:
    from collections.abc import Callable

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

#: The real ``__dict__`` of a module object (the proxy's own attributes).
_module_dict: Callable[[types.ModuleType], dict[str, Any]] = vars(types.ModuleType)[
    "__dict__"
].__get__


class ModuleProxy(types.ModuleType):
    """Forwards attribute access to the current version of one module."""

    __server_entry__: ModuleEntry

    def __init__(self, entry: ModuleEntry) -> None:
        super().__init__(entry.name)
        object.__setattr__(self, "__server_entry__", entry)

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        """The current version's namespace (the proxy's own while it has none)."""
        current = self.__server_entry__.current
        if current is None:
            own: dict[str, Any] = _module_dict(self)
            return own
        return current.module.__dict__

    def __getattr__(self, attr: str) -> Any:
        current = self.__server_entry__.current
        if current is None:
            raise AttributeError(
                f"module {self.__name__!r} has no current version (deleted)", name=attr, obj=self
            ) from UnknownModule(self.__name__, "has no current version")
        try:
            value = getattr(current.module, attr)
        except AttributeError:
            submodule = self._submodule(attr)
            if submodule is None:
                raise AttributeError(
                    f"module {self.__name__!r} has no attribute {attr!r}", name=attr, obj=self
                ) from None
            return submodule
        if type(value) is types.ModuleType:  # maybe a version of a submodule: its proxy
            return self._submodule(attr) or value
        return value

    def _submodule(self, attr: str) -> ModuleProxy | None:
        found = sys.modules.get(f"{self.__name__}.{attr}")
        return found if isinstance(found, ModuleProxy) else None

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr in _OWN or isinstance(value, ModuleProxy):
            object.__setattr__(self, attr, value)
            return
        current = self.__server_entry__.current
        if current is None:
            raise AttributeError(f"module {self.__name__!r} has no current version")
        setattr(current.module, attr, value)

    def __delattr__(self, attr: str) -> None:
        if attr in _module_dict(self):
            object.__delattr__(self, attr)
            return
        current = self.__server_entry__.current
        if current is None:
            raise AttributeError(f"module {self.__name__!r} has no current version")
        delattr(current.module, attr)

    def __dir__(self) -> list[str]:
        current = self.__server_entry__.current
        names = set(_module_dict(self))
        if current is not None:
            names.update(dir(current.module))
        return sorted(names)

    def __repr__(self) -> str:
        current = self.__server_entry__.current
        where = current.path if current is not None else "deleted"
        return f"<module {self.__name__!r} (current version from {where!r})>"
