"""Node names: ``alive@host``, short (``-sname``) or long (``-name``).

Rules, as ``net_kernel`` applies them:

1. The alive part is 1 to 255 bytes of letters, digits, ``_`` and ``-`` (EPMD's limit).
2. A short name's host has no dots (``py@vm``, ``py@localhost``).
3. A long name's host is a fully qualified domain name (it has a dot) or an IP address
   (``py@vm.example.org``, ``py@127.0.0.1``).
4. Short and long names do not mix in one cluster, and a dialing node checks that the peer
   calls itself exactly the name it dialed: pick the host part the peers will use.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Final, final

from server.errors import NodeNameError

__all__ = [
    "NodeName",
    "default_host",
]

_ALIVE: Final = re.compile(r"[A-Za-z0-9_-]{1,255}")
_HOST: Final = re.compile(r"[A-Za-z0-9_.:-]{1,255}")  # ':' for IPv6 addresses


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@final
@dataclass(frozen=True, slots=True)
class NodeName:
    """A node's name, ``alive@host``; validated on construction.

    Attributes:
        alive: the part before ``@``, which the node registers with EPMD.
        host: the part after ``@``.
    """

    alive: str
    host: str

    def __post_init__(self) -> None:
        text = f"{self.alive}@{self.host}"
        if not _ALIVE.fullmatch(self.alive):
            raise NodeNameError(
                text,
                "the part before '@' must be 1 to 255 letters, digits, '_' or '-'",
            )
        if not _HOST.fullmatch(self.host) or (":" in self.host and not _is_ip(self.host)):
            raise NodeNameError(
                text,
                "the host part must be a host name (letters, digits, '-', '.') or an IP address",
            )
        if self.host.startswith(".") or self.host.endswith(".") or ".." in self.host:
            raise NodeNameError(text, "the host part has an empty label (a stray '.')")

    @property
    def is_long(self) -> bool:
        """Whether this is a long name (its host has a dot or is an IP address)."""
        return "." in self.host or _is_ip(self.host)

    def __str__(self) -> str:
        return f"{self.alive}@{self.host}"

    @classmethod
    def parse(cls, text: str, *, long: bool = False) -> NodeName:
        """Parse ``alive@host`` (or a bare ``alive``: the default host is added).

        Args:
            text: the name, as given to ``-sname``/``-name``.
            long: True for a long name (``-name``), False for a short one (``-sname``).

        Returns:
            The validated name.

        Raises:
            NodeNameError: the name is malformed, or its kind is not the one asked for.
        """
        alive, at, host = text.partition("@")
        if not at:
            host = default_host(long=long)
        elif "@" in host:
            raise NodeNameError(text, "a node name has exactly one '@'")
        name = cls(alive, host)
        if long and not name.is_long:
            raise NodeNameError(
                text,
                f"a long name (-name) needs a fully qualified host or an IP address, not "
                f"{host!r}; use {alive}@{host}.<domain> or {alive}@127.0.0.1, or a short name",
            )
        if not long and name.is_long:
            raise NodeNameError(
                text,
                f"a short name (-sname) has a host without dots, not {host!r}; use "
                f"{alive}@{host.split('.')[0]} or a long name (-name)",
            )
        return name


def default_host(*, long: bool) -> str:
    """The host part Erlang gives a name without one.

    Args:
        long: True for long names (the FQDN), False for short ones (the host name up to its
            first dot).

    Returns:
        The host part.

    Raises:
        NodeNameError: a long name was asked for and this host has no fully qualified name.
    """
    if not long:
        return socket.gethostname().split(".")[0]
    fqdn = socket.getfqdn()
    if "." not in fqdn and not _is_ip(fqdn):
        raise NodeNameError(
            f"?@{fqdn}",
            f"this host's name {fqdn!r} is not fully qualified, so a long name needs an "
            "explicit host part (alive@host.domain or alive@<ip address>)",
        )
    return fqdn
