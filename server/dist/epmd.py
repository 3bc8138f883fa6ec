"""A client of EPMD, the Erlang Port Mapper Daemon (one per host, TCP 4369 by default).

How this works:

1. Every request opens a connection and sends a 2-byte length and a body. Replies are read
   with a bound on their size and a timeout; a malformed reply raises ``EpmdError``.
2. A registration (``ALIVE2_REQ``) lasts exactly as long as its connection: the returned
   ``EpmdRegistration`` holds the socket, and ``aclose()`` closes it, which unregisters.
3. ``PORT_PLEASE2_REQ`` and ``NAMES_REQ`` are one-shot: EPMD answers and closes.
4. ``ensure_epmd`` starts ``epmd -daemon`` when nothing answers on the port, as ``erl``
   does, and waits until it answers by polling with a bounded number of connection attempts.

The message layouts are the pure functions ``_pack_*``/``_parse_*`` below.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from server.errors import EpmdError, NodeNameTaken

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import SocketStream

__all__ = [
    "DEFAULT_EPMD_PORT",
    "EpmdClient",
    "EpmdRegistration",
    "NodeAddress",
    "default_epmd_port",
    "ensure_epmd",
]

DEFAULT_EPMD_PORT: Final = 4369
NODE_TYPE_NORMAL: Final = 77
NODE_TYPE_HIDDEN: Final = 72
PROTOCOL_TCP_IPV4: Final = 0
#: Distribution protocol versions we speak: only version 6 (the OTP 23+ handshake).
VERSION: Final = 6

_ALIVE2_REQ: Final = 120
_ALIVE2_X_RESP: Final = 118
_ALIVE2_RESP: Final = 121
_PORT_PLEASE2_REQ: Final = 122
_PORT2_RESP: Final = 119
_NAMES_REQ: Final = 110
_MAX_NAMES_REPLY: Final = 1 << 20


def default_epmd_port() -> int:
    """EPMD's port: ``$ERL_EPMD_PORT`` if set (as Erlang reads it), else 4369."""
    text = os.environ.get("ERL_EPMD_PORT", "")
    try:
        port = int(text)
    except ValueError:
        return DEFAULT_EPMD_PORT
    return port if 0 < port < 65536 else DEFAULT_EPMD_PORT


@final
@dataclass(frozen=True, slots=True)
class NodeAddress:
    """EPMD's answer to ``PORT_PLEASE2``: where and how a node listens.

    Attributes:
        port: the node's distribution port.
        node_type: 77 for a normal (visible) node, 72 for a hidden one.
        protocol: 0 for TCP/IPv4.
        highest: the highest distribution version it speaks.
        lowest: the lowest.
        extra: the registration's extra bytes.
    """

    port: int
    node_type: int
    protocol: int
    highest: int
    lowest: int
    extra: bytes = b""

    @property
    def hidden(self) -> bool:
        """Whether the node registered as hidden."""
        return self.node_type == NODE_TYPE_HIDDEN


def _request(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


def _pack_alive2(name: str, port: int, *, hidden: bool, extra: bytes = b"") -> bytes:
    raw = name.encode("utf-8")
    node_type = NODE_TYPE_HIDDEN if hidden else NODE_TYPE_NORMAL
    return _request(
        struct.pack(">BHBBHH", _ALIVE2_REQ, port, node_type, PROTOCOL_TCP_IPV4, VERSION, VERSION)
        + struct.pack(">H", len(raw))
        + raw
        + struct.pack(">H", len(extra))
        + extra
    )


def _parse_port2(body: bytes) -> NodeAddress | None:
    """``body``: the whole PORT2_RESP (EPMD closes after it)."""
    if len(body) < 2 or body[0] != _PORT2_RESP:
        raise ValueError(f"not a PORT2_RESP: {body[:16]!r}")
    if body[1] != 0:
        return None
    if len(body) < 14:
        raise ValueError(f"PORT2_RESP of {len(body)} bytes")
    port, node_type, protocol, highest, lowest, name_len = struct.unpack_from(">HBBHHH", body, 2)
    at = 12 + name_len
    if len(body) < at + 2:
        raise ValueError("PORT2_RESP shorter than its name")
    (extra_len,) = struct.unpack_from(">H", body, at)
    if len(body) != at + 2 + extra_len:
        raise ValueError("PORT2_RESP length does not match its extra field")
    extra = body[at + 2 :]
    return NodeAddress(port, node_type, protocol, highest, lowest, extra)


def _parse_names(body: bytes) -> list[tuple[str, int]]:
    """``body``: the whole NAMES reply: EPMD's port (u32), then ``name N at port P`` lines."""
    if len(body) < 4:
        raise ValueError(f"NAMES reply of {len(body)} bytes")
    found: list[tuple[str, int]] = []
    for line in body[4:].decode("utf-8", errors="replace").splitlines():
        words = line.split()
        if len(words) != 5 or words[0] != "name" or words[2:4] != ["at", "port"]:
            raise ValueError(f"NAMES line {line!r}")
        found.append((words[1], int(words[4])))
    return found


@final
class EpmdRegistration:
    """A name registered with EPMD; it stays registered until ``aclose()``.

    Attributes:
        name: the alive part registered.
        port: the distribution port registered.
        creation: the incarnation number EPMD handed out (non-zero, 32 bits).
    """

    def __init__(self, name: str, port: int, creation: int, stream: SocketStream) -> None:
        self.name = name
        self.port = port
        self.creation = creation
        self._stream = stream

    async def aclose(self) -> None:
        """Close the registration's connection, which unregisters the name."""
        await self._stream.aclose()

    async def __aenter__(self) -> EpmdRegistration:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"EpmdRegistration({self.name!r}, port={self.port}, creation={self.creation})"


@final
class EpmdClient:
    """Requests to the EPMD at ``host:port``.

    Args:
        host: EPMD's address.
        port: EPMD's port (default: ``default_epmd_port()``).
        timeout: the bound, in seconds, on connecting and on each reply.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, *, timeout: float = 5.0
    ) -> None:
        self.host = host
        self.port = port if port is not None else default_epmd_port()
        self.timeout = timeout

    def _error(self, why: str) -> EpmdError:
        return EpmdError(self.host, self.port, why)

    async def _connect(self) -> SocketStream:
        try:
            with anyio.fail_after(self.timeout):
                return await anyio.connect_tcp(self.host, self.port)
        except TimeoutError:
            raise self._error(f"no connection within {self.timeout:g} s") from None
        except OSError as exc:
            raise self._error(
                f"cannot connect ({exc.strerror or exc}); is epmd running? "
                "(start it with `epmd -daemon`, or start any erl node with a name)"
            ) from exc

    async def _receive_exactly(self, reader: BufferedByteReceiveStream, n: int) -> bytes:
        try:
            with anyio.fail_after(self.timeout):
                return await reader.receive_exactly(n)
        except TimeoutError:
            raise self._error(f"no reply within {self.timeout:g} s") from None
        except (anyio.IncompleteRead, anyio.EndOfStream):
            raise self._error("closed the connection before its reply was complete") from None
        except (anyio.BrokenResourceError, OSError) as exc:
            raise self._error(f"connection broken ({exc})") from exc

    async def _one_shot(self, request: bytes, limit: int) -> bytes:
        """Send ``request``; the whole reply, up to EPMD closing the connection."""
        stream = await self._connect()
        async with stream:
            chunks: list[bytes] = []
            size = 0
            try:
                with anyio.fail_after(self.timeout):
                    await stream.send(request)
                    while True:
                        try:
                            chunk = await stream.receive()
                        except anyio.EndOfStream:
                            break
                        size += len(chunk)
                        if size > limit:
                            raise self._error(f"a reply longer than {limit} bytes")
                        chunks.append(chunk)
            except TimeoutError:
                raise self._error(f"reply not finished within {self.timeout:g} s") from None
            except (anyio.BrokenResourceError, OSError) as exc:
                raise self._error(f"connection broken ({exc})") from exc
        return b"".join(chunks)

    async def register(
        self, name: str, port: int, *, hidden: bool, extra: bytes = b""
    ) -> EpmdRegistration:
        """Register ``name`` as listening on ``port``; hold the registration until closed.

        Args:
            name: the alive part of the node name (no ``@host``).
            port: the node's distribution port.
            hidden: register as a hidden node (type 72) rather than a normal one (77).
            extra: the registration's extra bytes.

        Returns:
            The registration; close it (or leave its ``async with``) to unregister.

        Raises:
            NodeNameTaken: another node holds ``name`` at this EPMD.
            EpmdError: EPMD cannot be reached or its reply is malformed.
        """
        if not 0 < len(name.encode("utf-8")) <= 255 or "@" in name:
            raise ValueError(f"an EPMD name is the alive part of a node name, not {name!r}")
        stream = await self._connect()
        try:
            try:
                await stream.send(_pack_alive2(name, port, hidden=hidden, extra=extra))
            except (anyio.BrokenResourceError, OSError) as exc:
                raise self._error(f"connection broken ({exc})") from exc
            reader = BufferedByteReceiveStream(stream)
            tag, result = await self._receive_exactly(reader, 2)
            if tag not in (_ALIVE2_X_RESP, _ALIVE2_RESP):
                raise self._error(f"answered ALIVE2_REQ with message {tag}, not 118 or 121")
            if result != 0:
                raise NodeNameTaken(self.host, self.port, name)
            size = 4 if tag == _ALIVE2_X_RESP else 2
            creation = int.from_bytes(await self._receive_exactly(reader, size), "big")
            if creation == 0:
                raise self._error("handed out creation 0, which no node may use")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            raise
        return EpmdRegistration(name, port, creation, stream)

    async def port_please(self, name: str) -> NodeAddress | None:
        """Where the node registered as ``name`` listens, or None if no node has that name.

        Raises:
            EpmdError: EPMD cannot be reached or its reply is malformed.
        """
        reply = await self._one_shot(
            _request(bytes([_PORT_PLEASE2_REQ]) + name.encode("utf-8")), 1024
        )
        try:
            return _parse_port2(reply)
        except ValueError as exc:
            raise self._error(f"malformed PORT2_RESP: {exc}") from None

    async def names(self) -> list[tuple[str, int]]:
        """The registered names and their ports, as EPMD lists them.

        Raises:
            EpmdError: EPMD cannot be reached or its reply is malformed.
        """
        reply = await self._one_shot(_request(bytes([_NAMES_REQ])), _MAX_NAMES_REPLY)
        try:
            return _parse_names(reply)
        except ValueError as exc:
            raise self._error(f"malformed NAMES reply: {exc}") from None


async def _answers(host: str, port: int, timeout: float) -> bool:
    try:
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(host, port)
    except (OSError, TimeoutError):
        return False
    await stream.aclose()
    return True


async def ensure_epmd(
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    epmd: str = "epmd",
    attempts: int = 20,
    first_delay: float = 0.01,
) -> bool:
    """Make sure an EPMD answers at ``host:port``, starting ``epmd -daemon`` if none does.

    The daemon is bound to ``host`` (``-address``) and ``port`` (``-port``) and outlives this
    process, as the one ``erl`` starts does.

    Args:
        host: the address EPMD must answer on (and the one a new daemon binds).
        port: its port (default: ``default_epmd_port()``).
        epmd: the ``epmd`` executable.
        attempts: how many connection attempts to make after starting it.
        first_delay: the wait before the second attempt, doubled each time (capped at 0.5 s).

    Returns:
        True if this call started the daemon, False if an EPMD already answered.

    Raises:
        EpmdError: ``epmd`` cannot be run, or it does not answer after ``attempts`` tries.
    """
    port = port if port is not None else default_epmd_port()
    if await _answers(host, port, 1.0):
        return False
    command = [epmd, "-daemon", "-address", host, "-port", str(port)]
    try:
        done = await anyio.run_process(command, check=False)
    except OSError as exc:
        raise EpmdError(host, port, f"cannot run {epmd} ({exc}); is Erlang installed?") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise EpmdError(host, port, f"`{' '.join(command)}` failed: {output}")
    delay = first_delay
    for _ in range(attempts):
        if await _answers(host, port, 1.0):
            return True
        await anyio.sleep(delay)  # polling a fact (does it answer?) with back-off
        delay = min(delay * 2, 0.5)
    waited = sum(min(first_delay * 2**i, 0.5) for i in range(attempts))
    raise EpmdError(
        host, port, f"started `{' '.join(command)}` but it did not answer within {waited:.1f} s"
    )
