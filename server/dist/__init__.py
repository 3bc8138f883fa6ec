"""Erlang distribution: this node as a peer of Erlang and Python nodes in one cluster.

- ``terms``: the Python model of Erlang terms (its docstring has the mapping table);
  ``etf``: the external term format codec (a pure core).
- ``names``, ``cookie``, ``epmd``, ``flags``, ``handshake``: naming, authentication,
  registration and the version-6 handshake.
- The connection layer, the net kernel and ``rpc`` (started from ``[node.dist]`` in
  sys.config by the node's boot); sending, linking, monitoring and calling across nodes is
  the kernel's own API with remote pids and ``(name, node)`` pairs.
"""

from __future__ import annotations

from server.dist._api import (
    connections,
    disconnect_node,
    drained,
    is_distributed,
    monitor_nodes,
    node_report,
    ping,
)
from server.dist._net_kernel import ConnectionInfo
from server.dist._records import RemoteException, register_record, registered_records
from server.dist._rpc import call as rpc_call
from server.dist._supervisor import start_link
from server.dist.cookie import load_cookie
from server.dist.epmd import EpmdClient, EpmdRegistration, NodeAddress, ensure_epmd
from server.dist.etf import DEFAULT_LIMITS, Limits, decode, decode_at, encode, encode_into
from server.dist.flags import HIDDEN_FLAGS, MANDATORY, VISIBLE_FLAGS, DistFlag
from server.dist.handshake import Handshake, accept, initiate
from server.dist.names import NodeName
from server.dist.terms import (
    Atom,
    BitString,
    Export,
    ExternalPid,
    ExternalRef,
    Fun,
    Identities,
    ImproperList,
    Map,
    PlainIdentities,
    Port,
    term_key,
)
from server.errors import DistributionError, RpcError, TermDecodeError

__all__ = [
    "DEFAULT_LIMITS",
    "HIDDEN_FLAGS",
    "MANDATORY",
    "VISIBLE_FLAGS",
    "Atom",
    "BitString",
    "ConnectionInfo",
    "DistFlag",
    "DistributionError",
    "EpmdClient",
    "EpmdRegistration",
    "Export",
    "ExternalPid",
    "ExternalRef",
    "Fun",
    "Handshake",
    "Identities",
    "ImproperList",
    "Limits",
    "Map",
    "NodeAddress",
    "NodeName",
    "PlainIdentities",
    "Port",
    "RemoteException",
    "RpcError",
    "TermDecodeError",
    "accept",
    "connections",
    "decode",
    "decode_at",
    "disconnect_node",
    "drained",
    "encode",
    "encode_into",
    "ensure_epmd",
    "initiate",
    "is_distributed",
    "load_cookie",
    "monitor_nodes",
    "node_report",
    "ping",
    "register_record",
    "registered_records",
    "rpc_call",
    "start_link",
    "term_key",
]

# The names of the private modules give this package as their home, in reprs and docs.
for _name in __all__:
    _value = globals()[_name]
    if getattr(_value, "__module__", "").startswith("server.dist._"):
        _value.__module__ = __name__
del _name, _value
