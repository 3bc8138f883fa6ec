"""TOML out: tables of JSON-like values written as text that ``tomllib`` reads back equal.

The project reads every config with ``tomllib`` (which only reads); the few places that
write one (each node's sys.config of ``server start --nodes N``, the sys.config of an
upgrade test) write it here. Nested tables become ``[a.b]`` sections, a table inside a list
an inline table; strings use JSON's escapes (which are TOML's), numbers include ``inf`` and
``nan``.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["to_toml"]

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def to_toml(tables: Mapping[str, Any]) -> str:
    """``tables`` as TOML text that ``tomllib`` reads back equal.

    Raises:
        TypeError: a value TOML cannot hold (``None``, a set, any other object).
    """
    lines: list[str] = []
    _table(lines, (), tables)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append(f"[{'.'.join(_key(part) for part in path)}]")
    lines.extend(f"{_key(key)} = {_value(value)}" for key, value in scalars.items())
    for key, value in tables.items():
        _table(lines, (*path, key), value)


def _string(text: str) -> str:
    # JSON's escapes are TOML's basic-string escapes; TOML also forbids a literal DEL
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: object) -> str:
    match value:
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float():
            if math.isnan(value):
                return "nan"
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
            return repr(value)
        case str():
            return _string(value)
        case list() | tuple():
            return "[" + ", ".join(_value(item) for item in value) + "]"
        case dict():
            inner = ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items())
            return "{" + inner + "}"
    raise TypeError(
        f"{value!r} cannot be written to sys.config: no TOML value for {type(value).__name__}"
    )
