"""Opening the control socket safely, and removing it (plain system calls, no anyio).

How this works:

1. The folder: created with mode 0700 when missing; refused when it is not a folder or
   when every user may write to it (a world-writable folder lets anyone swap the socket
   file for their own).
2. The lock: ``<socket>.lock`` next to the socket, held with ``flock`` for as long as the
   server runs. The kernel drops it when the process holding it dies, however it dies, so
   "the lock is free" means "the node that made any socket file there is gone": a stale
   file can then be replaced without racing a second node starting at the same moment.
   The lock file itself stays (removing it would reopen that race).
3. The socket file: when one is there, a connection is tried first. One that is answered
   is a live server (one that does not take the lock, say an older version): refused,
   left alone. One refused with ``ECONNREFUSED`` is stale and is unlinked. Anything that
   is not a socket is never removed: that is a refusal too.
4. Bind, ``chmod 0600``, then ``listen``: until ``listen`` no client can connect, so there
   is no moment at which another user could reach a socket with looser permissions.
5. On the way out the socket file is unlinked only if it is still the one this server
   bound (same device and inode), so a server that ends never removes its successor's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import sys
from typing import TYPE_CHECKING, Final, final

from server.errors import ControlSocketError, SocketInUse

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MAX_PATH_BYTES", "BoundSocket", "bind_control_socket"]

#: The longest socket path ``AF_UNIX`` takes (``sun_path`` less its terminating NUL).
MAX_PATH_BYTES: Final = 103 if sys.platform == "darwin" else 107

_FOLDER_MODE: Final = 0o700
_SOCKET_MODE: Final = 0o600


@final
class BoundSocket:
    """A listening control socket, its lock, and the identity of its file."""

    __slots__ = ("_identity", "_lock_fd", "path", "socket")

    def __init__(self, path: Path, sock: socket.socket, lock_fd: int) -> None:
        self.path = path
        self.socket = sock
        self._lock_fd = lock_fd
        info = os.stat(path)
        self._identity = (info.st_dev, info.st_ino)

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening socket, as the acceptor takes it."""
        return [self.socket]

    def close(self) -> None:
        """Unlink the file first (no client reaches a closing server), then close. Idempotent."""
        self.remove()
        self.socket.close()

    def remove(self) -> None:
        """Unlink the socket file (if still ours) and release the lock. Idempotent."""
        with contextlib.suppress(OSError):
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1


def bind_control_socket(path: Path, *, backlog: int = 128) -> BoundSocket:
    """Make ``path`` a listening Unix socket only this user can reach.

    Raises:
        SocketInUse: another node holds the lock or answers on ``path``.
        ControlSocketError: the path is too long, its folder is unsafe or cannot be made,
            something other than a socket is in the way, or the system refused.
    """
    where = str(path)
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        raise ControlSocketError(
            where,
            f"the path is {size} bytes long, more than the {MAX_PATH_BYTES} a Unix socket "
            "allows; use a shorter node root",
        )
    _prepare_folder(path)
    lock_fd = _take_lock(path)
    try:
        _clear_stale(path)
        sock = _listen(path, backlog)
    except BaseException:
        os.close(lock_fd)
        raise
    return BoundSocket(path, sock, lock_fd)


def _prepare_folder(path: Path) -> None:
    folder = path.parent
    try:
        folder.mkdir(mode=_FOLDER_MODE, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        why = f"cannot create its folder {folder}: {_why(exc)}"
        raise ControlSocketError(str(path), why) from None
    else:
        os.chmod(folder, _FOLDER_MODE)  # the umask may have taken bits away; set it exactly
    try:
        info = os.stat(folder)
    except OSError as exc:
        why = f"cannot read its folder {folder}: {_why(exc)}"
        raise ControlSocketError(str(path), why) from None
    if not stat.S_ISDIR(info.st_mode):
        raise ControlSocketError(str(path), f"{folder} is not a folder")
    if info.st_mode & stat.S_IWOTH:
        raise ControlSocketError(
            str(path),
            f"its folder {folder} is writable by every user (mode "
            f"{stat.S_IMODE(info.st_mode):o}); use a folder only this user can write to",
        )


def _take_lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _SOCKET_MODE)
    except OSError as exc:
        why = f"cannot open its lock {lock_path}: {_why(exc)}"
        raise ControlSocketError(str(path), why) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise SocketInUse(str(path)) from None
        why = f"cannot lock {lock_path}: {_why(exc)}"
        raise ControlSocketError(str(path), why) from None
    return fd


def _clear_stale(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        why = f"cannot read it: {_why(exc)}"
        raise ControlSocketError(str(path), why) from None
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlSocketError(
            str(path), "something that is not a socket is in the way; move it elsewhere"
        )
    if _answers(path):
        raise SocketInUse(str(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _answers(path: Path) -> bool:
    """Whether a server accepts connections on the socket file at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)  # a full backlog answers EAGAIN at once instead of blocking
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except BlockingIOError:
        return True  # listening, with its backlog full
    except OSError as exc:
        why = f"cannot check whether it is in use: {_why(exc)}"
        raise ControlSocketError(str(path), why) from None
    finally:
        probe.close()
    return True


def _listen(path: Path, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        sock.bind(str(path))
        bound = True
        os.chmod(path, _SOCKET_MODE)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if bound:
            with contextlib.suppress(OSError):
                os.unlink(path)
        why = f"cannot listen on it: {_why(exc)}"
        raise ControlSocketError(str(path), why) from None
    return sock


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
