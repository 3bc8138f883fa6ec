"""The cookie, the shared secret of a cluster, found the way Erlang finds it.

1. An explicit cookie (``sys.config``, like ``-setcookie``) wins.
2. Else ``~/.erlang.cookie``: its first line, trailing blanks removed. The file must be a
   regular file that only its owner may read (erts refuses it otherwise, and so do we).
3. If the file does not exist it is created, as erts does: 20 random uppercase letters,
   mode 0400, created exclusively so that two nodes starting at once agree on one cookie.

The cookie authenticates peers by an MD5 challenge (``digest``): it is the only protection
of a distribution port, so keep that port on loopback or a private network.
"""

from __future__ import annotations

import os
import secrets
import stat
import string
from pathlib import Path
from typing import Final

from server.dist._handshake_wire import digest, digest_matches
from server.errors import CookieError

__all__ = [
    "cookie_path",
    "digest",
    "digest_matches",
    "load_cookie",
    "validate_cookie",
]

_COOKIE_LENGTH: Final = 20
_MAX_COOKIE: Final = 255  # erts keeps the cookie as an atom


def cookie_path() -> Path:
    """``~/.erlang.cookie`` (``$HOME`` first, as Erlang looks it up)."""
    return Path.home() / ".erlang.cookie"


def validate_cookie(cookie: str, *, path: Path | None = None) -> str:
    """Check that ``cookie`` is 1 to 255 printable ASCII characters; return it.

    Args:
        cookie: the cookie text.
        path: the file it came from, for the error message.

    Returns:
        The cookie, unchanged.

    Raises:
        CookieError: it is empty, too long, or has characters erts does not accept.
    """
    where = str(path) if path is not None else None
    if not cookie:
        raise CookieError(where, "the cookie is empty; put at least one character in it")
    if len(cookie) > _MAX_COOKIE:
        raise CookieError(where, f"the cookie is {len(cookie)} characters, at most 255")
    if not all(" " <= c <= "~" for c in cookie):
        raise CookieError(
            where, "the cookie has characters other than printable ASCII; keep to those"
        )
    return cookie


def load_cookie(explicit: str | None = None, *, path: Path | None = None) -> str:
    """The node's cookie: ``explicit`` if given, else read (or create) the cookie file.

    Args:
        explicit: a cookie from the configuration; the file is then not touched.
        path: the cookie file (default ``cookie_path()``).

    Returns:
        The cookie text.

    Raises:
        CookieError: the cookie is malformed, or the file is not a regular file, is readable
            by group or others, or cannot be read or created.
    """
    if explicit is not None:
        return validate_cookie(explicit)
    path = path if path is not None else cookie_path()
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    _create(path)
    return _read(path)


def _read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CookieError(str(path), f"cannot be read ({exc.strerror}); fix its owner") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CookieError(str(path), "is not a regular file; replace it with one")
        if info.st_mode & 0o077:
            raise CookieError(
                str(path),
                f"must be accessible by its owner only (mode is {stat.S_IMODE(info.st_mode):04o}"
                f"); run chmod 400 {path}",
            )
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    first = raw.split(b"\n", 1)[0].rstrip(b" \t\r")
    try:
        text = first.decode("ascii")
    except UnicodeDecodeError:
        raise CookieError(str(path), "has characters other than printable ASCII") from None
    return validate_cookie(text, path=path)


def _create(path: Path) -> None:
    cookie = "".join(secrets.choice(string.ascii_uppercase) for _ in range(_COOKIE_LENGTH))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    except FileExistsError:
        return  # another node created it a moment ago: read that one
    except OSError as exc:
        raise CookieError(
            str(path), f"does not exist and cannot be created ({exc.strerror})"
        ) from exc
    with os.fdopen(fd, "wb") as file:
        file.write(cookie.encode("ascii"))
    os.chmod(path, 0o400)  # whatever the umask
