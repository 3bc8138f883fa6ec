"""Erlang distribution: node names, cookies, EPMD and the handshake.

The term codec and the connection layer re-export their names here too.
"""

from __future__ import annotations

from server.dist.cookie import load_cookie
from server.dist.epmd import EpmdClient, EpmdRegistration, NodeAddress, ensure_epmd
from server.dist.flags import HIDDEN_FLAGS, MANDATORY, VISIBLE_FLAGS, DistFlag
from server.dist.handshake import Handshake, accept, initiate
from server.dist.names import NodeName

__all__ = [
    "DistFlag",
    "EpmdClient",
    "EpmdRegistration",
    "HIDDEN_FLAGS",
    "Handshake",
    "MANDATORY",
    "NodeAddress",
    "NodeName",
    "VISIBLE_FLAGS",
    "accept",
    "ensure_epmd",
    "initiate",
    "load_cookie",
]
