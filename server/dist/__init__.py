"""Erlang distribution: the Python node as a peer of Erlang nodes.

``terms`` is the Python model of Erlang terms (its docstring has the mapping table);
``etf`` is the external term format codec, a pure core the connection layer calls.
"""

from __future__ import annotations

from server.dist.etf import DEFAULT_LIMITS, Limits, decode, decode_at, encode, encode_into
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
from server.errors import DistributionError, TermDecodeError

__all__ = [
    "DEFAULT_LIMITS",
    "Atom",
    "BitString",
    "DistributionError",
    "Export",
    "ExternalPid",
    "ExternalRef",
    "Fun",
    "Identities",
    "ImproperList",
    "Limits",
    "Map",
    "PlainIdentities",
    "Port",
    "TermDecodeError",
    "decode",
    "decode_at",
    "encode",
    "encode_into",
    "term_key",
]
