"""A connected socket read on demand: the bytes a peer sends wait in the kernel, not here.

anyio's asyncio TCP streams read whatever arrives into a queue of their own as soon as it
arrives, whether the reader asked for it or not, so a peer that sends without reading the
answers grows the node's memory one to one with what it sends. ``SocketIO`` reads only
when asked and at most as many bytes as asked: what the peer sends beyond that stays in
the kernel's socket buffer, the TCP window closes, and the peer's own ``send`` blocks.
That is back-pressure whatever the timing.

How this works:

1. ``receive(n)`` reads with one ``recv(n)`` once the event loop has said the socket is
   readable. The socket stays registered with the loop while its owner reads it (asyncio's
   ``add_reader``, once per connection, not once per wait): a keep-alive connection costs
   no registration per request, and no ``recv`` that finds nothing. When the loop says
   "readable" while nobody waits (the owner is busy with what it read), the registration
   is dropped, noted, and the next ``receive`` reads at once: a level-triggered readiness
   is never left to fire again and again at nobody.
2. ``send`` writes what the kernel takes and waits for writability for the rest. Only a
   wait gets a deadline (``timeout``: a peer that sends nothing, or takes nothing, for that
   long). A reading socket has one timer of the loop's for its deadlines, pushed later
   lazily: a wait that ends leaves it set, the next wait only moves the deadline, and the
   timer, when it fires before the deadline, sets itself again for it. So a keep-alive
   connection's idle time-out costs no timer per request.
3. Every ``receive`` passes a checkpoint: either it waited (and the others ran), or it
   read at once and then yields, so a peer that floods one connection cannot hold the
   event loop.
4. ``close`` wakes a task of another process waiting on the socket with an error
   (``anyio.ClosedResourceError``, as anyio's own waits) instead of leaving it on a reused
   descriptor, takes the socket out of the loop, then closes it; closing twice is
   harmless, which lets the owner of a connection close it after the connection's own
   process did.

This is asyncio's API, not anyio's: the node runs on anyio's asyncio backend, and these
are the two calls of every request on every connection, where anyio's backend lookups and
per-wait registration were a fifth of a small request's cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
from typing import Final, final

import anyio

__all__ = ["DEFAULT_READ_SIZE", "SocketIO"]

#: The most one ``receive`` takes unless told otherwise (bytes).
DEFAULT_READ_SIZE: Final = 64 * 1024


@final
class SocketIO:
    """A connected, non-blocking socket with awaitable, bounded reads and writes."""

    __slots__ = (
        "_closed",
        "_deadline",
        "_loop",
        "_readable",
        "_registered",
        "_stale",
        "_timer",
        "_waiter",
        "socket",
    )

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # once a receive waited
        self._registered = False  # the loop watches the socket for us (add_reader)
        self._readable = False  # the loop said readable while nobody waited
        self._stale = False  # a reader woken: the loop's next look reports that readiness again
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = math.inf  # the waiting receive's, on the loop's clock
        #: the loop's timer for a deadline: one per connection, moved later lazily (a
        #: keep-alive connection's every wait pushes its idle deadline; the timer, when it
        #: fires early, sets itself again for the deadline then)
        self._timer: asyncio.TimerHandle | None = None

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
            anyio.ClosedResourceError: ``close`` was called while it waited.
            anyio.BusyResourceError: another task is waiting to read this socket.
        """
        sock = self.socket
        if self._readable:
            self._readable = False
            try:
                data = sock.recv(max_bytes)
            except BlockingIOError:
                pass  # taken since: wait like any other time
            else:
                await asyncio.sleep(0)  # the checkpoint: anyio's, without its lookups
                return data
        while True:  # the wait is the checkpoint
            await self._wait_readable(timeout)
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                continue

    async def _wait_readable(self, timeout: float) -> None:
        if self._waiter is not None:
            raise anyio.BusyResourceError("reading from")
        if self._closed:
            raise anyio.ClosedResourceError
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if not self._registered:
            loop.add_reader(self.socket.fileno(), self._on_readable)
            self._registered = True
        if timeout == math.inf:
            self._deadline = math.inf
        else:
            self._deadline = deadline = loop.time() + timeout
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._on_timer, deadline)
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self, when: float) -> None:
        """The loop's timer: the wait's deadline passed, or moved later since it was set."""
        self._timer = None
        waiter = self._waiter
        deadline = self._deadline
        if waiter is None or waiter.done() or deadline == math.inf:
            return  # no wait with a deadline: the next one sets a timer
        if deadline <= when:
            waiter.set_exception(TimeoutError())
            return
        assert self._loop is not None
        self._timer = self._loop.call_at(deadline, self._on_timer, deadline)

    def _on_readable(self) -> None:
        """The loop's callback: wake the reader, or note it and stop watching."""
        if self._stale:
            # the readiness the reader woke for, reported again by the loop's next look
            # before the reader ran: skipped (readiness is level-triggered, so anything
            # new is reported again at the look after)
            self._stale = False
            return
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
                self._stale = True
            return
        self._unregister()
        self._readable = True

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            assert self._loop is not None
            self._loop.remove_reader(self.socket.fileno())

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
                await _wait_writable(sock, timeout)
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
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(anyio.ClosedResourceError())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.socket.fileno() >= 0:
            self._unregister()
            anyio.notify_closing(self.socket)  # a send waiting for writability
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


async def _wait_writable(sock: socket.socket, timeout: float) -> None:
    """Wait until ``sock`` takes more, at most ``timeout`` seconds (then ``TimeoutError``)."""
    if timeout == math.inf:
        await anyio.wait_writable(sock)
        return
    async with asyncio.timeout(timeout):
        await anyio.wait_writable(sock)
