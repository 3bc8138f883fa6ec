"""The distribution capability flags a node advertises in its handshake.

Each side of a connection sends its flags; the flags that apply to the connection are the
intersection of both. An acceptor refuses a peer that lacks one of the ``MANDATORY`` flags
(status ``not_allowed``). The values are those of OTP's ``dist.h``; the "must" notes give the
first OTP release that refuses a peer without the flag.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "HIDDEN_FLAGS",
    "MANDATORY",
    "MANDATORY_25",
    "VISIBLE_FLAGS",
    "DistFlag",
    "describe",
    "missing_mandatory",
]


class DistFlag(enum.IntFlag):
    """One capability bit of the distribution protocol (OTP's ``DFLAG_*``)."""

    PUBLISHED = 0x1  # a visible node: peers list it in nodes(); unset for a hidden node
    ATOM_CACHE = 0x2  # obsolete
    EXTENDED_REFERENCES = 0x4  # must (25+)
    DIST_MONITOR = 0x8
    FUN_TAGS = 0x10  # must (25+)
    DIST_MONITOR_NAME = 0x20
    HIDDEN_ATOM_CACHE = 0x40  # obsolete
    NEW_FUN_TAGS = 0x80  # must (25+)
    EXTENDED_PIDS_PORTS = 0x100  # must (25+)
    EXPORT_PTR_TAG = 0x200  # must (25+)
    BIT_BINARIES = 0x400  # must (25+)
    NEW_FLOATS = 0x800  # must (25+)
    UNICODE_IO = 0x1000
    DIST_HDR_ATOM_CACHE = 0x2000
    SMALL_ATOM_TAGS = 0x4000
    ETS_COMPRESSED = 0x8000  # internal to erts, never sent
    UTF8_ATOMS = 0x10000  # must (25+)
    MAP_TAG = 0x20000  # must (25+)
    BIG_CREATION = 0x40000  # must (25+)
    SEND_SENDER = 0x80000
    BIG_SEQTRACE_LABELS = 0x100000
    PENDING_CONNECT = 0x200000  # internal to erts, never sent
    EXIT_PAYLOAD = 0x400000
    FRAGMENTS = 0x800000
    HANDSHAKE_23 = 0x1000000  # must (25+)
    UNLINK_ID = 0x2000000  # must (26+)
    MANDATORY_25_DIGEST = 0x4000000  # stands for every flag OTP 25 demands
    SPAWN = 1 << 32
    NAME_ME = 1 << 33
    V4_NC = 1 << 34  # must (26+)
    ALIAS = 1 << 35
    ALTACT_SIG = 1 << 37  # OTP 28's priority signals; we leave it unset


#: What OTP 25 demands of a peer (the 11 flags ``MANDATORY_25_DIGEST`` stands for).
MANDATORY_25: Final = (
    DistFlag.EXTENDED_REFERENCES
    | DistFlag.FUN_TAGS
    | DistFlag.NEW_FUN_TAGS
    | DistFlag.EXTENDED_PIDS_PORTS
    | DistFlag.EXPORT_PTR_TAG
    | DistFlag.BIT_BINARIES
    | DistFlag.NEW_FLOATS
    | DistFlag.UTF8_ATOMS
    | DistFlag.MAP_TAG
    | DistFlag.BIG_CREATION
    | DistFlag.HANDSHAKE_23
)

#: What we demand of a peer, and what OTP 26+ demands of us: OTP 25's 11 + UNLINK_ID + V4_NC.
MANDATORY: Final = MANDATORY_25 | DistFlag.UNLINK_ID | DistFlag.V4_NC

#: What a hidden node advertises: every capability the node implements, without PUBLISHED.
HIDDEN_FLAGS: Final = (
    MANDATORY
    | DistFlag.DIST_MONITOR
    | DistFlag.DIST_MONITOR_NAME
    | DistFlag.ALIAS
    | DistFlag.SEND_SENDER
    | DistFlag.EXIT_PAYLOAD
    | DistFlag.DIST_HDR_ATOM_CACHE
    | DistFlag.FRAGMENTS
    | DistFlag.SPAWN
)

#: What a visible node advertises: ``HIDDEN_FLAGS`` + PUBLISHED.
VISIBLE_FLAGS: Final = HIDDEN_FLAGS | DistFlag.PUBLISHED


def missing_mandatory(flags: int, mandatory: int = MANDATORY) -> DistFlag:
    """The flags of ``mandatory`` that ``flags`` lacks (empty when none is missing).

    A peer that sets ``MANDATORY_25_DIGEST`` counts as having every flag of ``MANDATORY_25``,
    as OTP 25+ reads it.

    Args:
        flags: the peer's flags (any integer; bits we do not know are ignored).
        mandatory: the flags demanded (default: ``MANDATORY``).

    Returns:
        The missing flags; falsy when the peer has them all.
    """
    have = flags
    if flags & DistFlag.MANDATORY_25_DIGEST:
        have |= MANDATORY_25
    return DistFlag(mandatory & ~have & _KNOWN)


def describe(flags: int) -> list[str]:
    """The names of the set flags, lowest bit first; unknown bits as hex (``"0x1000000000"``).

    Args:
        flags: any flag word, as received or as built.

    Returns:
        One string per set bit.
    """
    names: list[str] = []
    bit = 1
    while bit <= flags:
        if flags & bit:
            known = DistFlag._value2member_map_.get(bit)
            names.append(known.name if isinstance(known, DistFlag) and known.name else hex(bit))
        bit <<= 1
    return names


_KNOWN: Final = sum(flag.value for flag in DistFlag)
