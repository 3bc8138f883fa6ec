"""The sys.config of each node of ``server start --nodes N``: what it adds, and TOML out.

A pure core: ``node_layer`` takes the user's sys.config (as the TOML tables it was read
into) and returns node ``i``'s; ``to_toml`` (``server.spec.toml_text``) writes tables back
as TOML text. What a node's layer sets over the user's file:

- ``[node] name`` = ``<stem>-<i>`` and ``control_socket`` = ``run/control.sock`` (each node
  its own socket, under its own root);
- ``[node.http] reuse_port = true`` (every node listens on the same HTTP port);
- ``[node.dist]``: ``name`` = ``<stem>-<i>@localhost``, the cluster's ``cookie`` and
  ``connect`` = every other node, the other keys (EPMD, tick time, rpc_allow) as given.

Everything else (heart limits, trusted keys, application env) is the user's, unchanged.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from server.spec.toml_text import to_toml

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["node_layer", "node_names", "stem_of", "to_toml"]


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
