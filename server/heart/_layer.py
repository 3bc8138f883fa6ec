"""The sys.config of each node of ``server start --nodes N``: what it adds, and TOML out.

A pure core: ``node_layer`` takes the user's sys.config (as the TOML tables it was read
into) and returns node ``i``'s, ``to_toml`` writes tables back as TOML text. What a node's
layer sets over the user's file:

- ``[node] name`` = ``<stem>-<i>`` and ``control_socket`` = ``run/control.sock`` (each node
  its own socket, under its own root);
- ``[node.http] reuse_port = true`` (every node listens on the same HTTP port);
- ``[node.dist]``: ``name`` = ``<stem>-<i>@localhost``, the cluster's ``cookie`` and
  ``connect`` = every other node, the other keys (EPMD, tick time, rpc_allow) as given.

Everything else (heart limits, trusted keys, application env) is the user's, unchanged.
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["node_layer", "node_names", "stem_of", "to_toml"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def stem_of(tables: Mapping[str, Any]) -> str:
    """The nodes' common name: the alive part of ``[node.dist] name``, else ``[node] name``."""
    node = tables.get("node", {})
    dist = node.get("dist") or {}
    name = dist.get("name")
    if isinstance(name, str) and name:
        return name.partition("@")[0]
    own = node.get("name")
    return own if isinstance(own, str) and own else "node"


def node_names(stem: str, count: int) -> list[str]:
    """The distribution names of nodes 1 to ``count``: ``<stem>-<i>@localhost``."""
    return [f"{stem}-{i}@localhost" for i in range(1, count + 1)]


def node_layer(
    tables: Mapping[str, Any], index: int, names: list[str], cookie: str
) -> dict[str, Any]:
    """The sys.config tables of node ``index`` (1-based) of ``names``, over ``tables``."""
    layer: dict[str, Any] = copy.deepcopy(dict(tables))
    node = layer.setdefault("node", {})
    me = names[index - 1]
    node["name"] = me.partition("@")[0]
    node["control_socket"] = "run/control.sock"
    node.setdefault("http", {})["reuse_port"] = True
    dist = node.setdefault("dist", {})
    dist["name"] = me
    dist["cookie"] = cookie
    dist["connect"] = [name for name in names if name != me]
    return layer


def to_toml(tables: Mapping[str, Any]) -> str:
    """``tables`` as TOML text that ``tomllib`` reads back equal (JSON values and tables)."""
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
    # JSON's escapes are TOML's, but JSON leaves DEL raw and TOML forbids it
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
        case list():
            return "[" + ", ".join(_value(item) for item in value) + "]"
        case dict():
            inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
            return "{" + inner + "}" if inner else "{}"
    raise TypeError(f"no TOML value for {type(value).__name__}: {value!r}")
