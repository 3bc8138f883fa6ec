"""A connected socket read on demand: the bytes a peer sends wait in the kernel, not here.

anyio's asyncio TCP streams read whatever arrives into a queue of their own as soon as it
arrives, whether the reader asked for it or not, so a peer that sends without reading the
answers grows the node's memory one to one with what it sends. ``SocketIO`` reads only
when asked and at most as many bytes as asked: what the peer sends beyond that stays in
the kernel's socket buffer, the TCP window closes, and the peer's own ``send`` blocks.
That is back-pressure whatever the timing.

How this works:

1. ``receive(n)`` tries ``recv(n)`` and waits for readability only when nothing is there;
   ``send`` writes what the kernel takes and waits for writability for the rest. Both are
   plain non-blocking system calls between waits of the event loop, and only a wait gets
   a deadline (``timeout``: a peer that sends nothing, or takes nothing, for that long),
   so the common case costs no timer.
2. A ``receive`` that found bytes at once still passes a checkpoint, so a peer that floods
   one connection cannot hold the event loop: every other process runs between reads. A
   ``receive`` that waited has let the others run already and returns what it read.
3. ``close`` tells the event loop first (``notify_closing``), so a task of another process
   waiting on the socket is woken with an error instead of waiting on a reused descriptor;
   closing twice is harmless, which lets the owner of a connection close it after the
   connection's own process did.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
from typing import TYPE_CHECKING, Final, final

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["DEFAULT_READ_SIZE", "SocketIO"]

#: The most one ``receive`` takes unless told otherwise (bytes).
DEFAULT_READ_SIZE: Final = 64 * 1024


@final
class SocketIO:
    """A connected, non-blocking socket with awaitable, bounded reads and writes."""

    __slots__ = ("_closed", "socket")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    async def receive(
        self, max_bytes: int = DEFAULT_READ_SIZE, *, timeout: float = math.inf
    ) -> bytes:
        """At most ``max_bytes`` bytes; ``b""`` once the peer has closed its side.

        Raises:
            TimeoutError: nothing arrived for ``timeout`` seconds.
            OSError: the connection broke (reset by the peer, closed here, ...).
        """
        sock = self.socket
        try:
            data = sock.recv(max_bytes)
        except BlockingIOError:
            pass
        else:
            await asyncio.sleep(0)  # anyio's checkpoint on asyncio, without its lookups
            return data
        while True:  # the wait was the checkpoint
            await _wait(anyio.wait_readable, sock, timeout)
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                continue

    async def send(self, data: bytes, *, timeout: float = math.inf) -> None:
        """Send all of ``data``, waiting while the peer's window is full.

        Raises:
            TimeoutError: the peer took nothing for ``timeout`` seconds.
            OSError: the connection broke (the peer went away, closed here, ...).
        """
        sock = self.socket
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await _wait(anyio.wait_writable, sock, timeout)
                continue
            view = view[sent:]

    def send_eof(self) -> None:
        """Shut the write side (the peer reads end of stream); reading goes on."""
        with contextlib.suppress(OSError):  # already gone: nothing to tell the peer
            self.socket.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the socket (again: nothing happens)."""
        if self._closed:
            return
        self._closed = True
        if self.socket.fileno() >= 0:
            anyio.notify_closing(self.socket)
        self.socket.close()

    def peer_credentials(self) -> tuple[int, int, int] | None:
        """``(pid, uid, gid)`` of the peer process on a Unix socket (Linux), else None."""
        option = getattr(socket, "SO_PEERCRED", None)
        if option is None or self.socket.family != socket.AF_UNIX:
            return None
        size = struct.calcsize("iII")  # struct ucred: pid_t, uid_t, gid_t
        pid, uid, gid = struct.unpack(
            "iII", self.socket.getsockopt(socket.SOL_SOCKET, option, size)
        )
        return int(pid), int(uid), int(gid)


async def _wait(
    wait: Callable[[socket.socket], Awaitable[None]], sock: socket.socket, timeout: float
) -> None:
    """Wait until ``sock`` is ready, at most ``timeout`` seconds (then ``TimeoutError``)."""
    if timeout == math.inf:
        await wait(sock)
        return
    async with asyncio.timeout(timeout):  # asyncio's: no anyio backend lookups per wait
        await wait(sock)
