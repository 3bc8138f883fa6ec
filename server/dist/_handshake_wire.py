"""The handshake's messages as bytes: a pure core with no I/O (sans-IO, as h11).

How this works:

1. Every handshake message travels as a 2-byte big-endian length and a body; ``frame``
   adds the length, the ``parse_*`` functions take a body without it.
2. Each ``pack_*`` builds one body; each ``parse_*`` reads one and raises ``WireError`` on a
   wrong tag, a short or overlong body, or a bad field. Callers wrap it in a
   ``HandshakeError`` naming the peer.
3. Message order (protocol version 6; A dials, B accepts)::

       A -> B  send_name        'N' flags:u64 creation:u32 nlen:u16 name [ignored extra]
                                 (old form: 'n' version:u16 flags:u32 name)
       B -> A  status           's' text   (ok, ok_simultaneous, nok, not_allowed, alive,
                                            named: nlen:u16 name creation:u32)
       A -> B  status answer    's' true|false             (only after 'alive')
       B -> A  challenge        'N' flags:u64 challenge:u32 creation:u32 nlen:u16 name
                                 (old form: 'n' version:u16 flags:u32 challenge:u32 name)
       A -> B  complement       'c' flags_high:u32 creation:u32  (only after an old 'n')
       A -> B  challenge_reply  'r' challenge:u32 digest:16
       B -> A  challenge_ack    'a' digest:16

4. The digest is ``md5(cookie + decimal(challenge))``, the challenge as an unsigned 32-bit
   number; digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Final, final

__all__ = [
    "MAX_BODY",
    "STATUSES",
    "Challenge",
    "ChallengeReply",
    "Complement",
    "SendName",
    "Status",
    "WireError",
    "digest",
    "digest_matches",
    "frame",
    "pack_challenge",
    "pack_challenge_ack",
    "pack_challenge_reply",
    "pack_complement",
    "pack_old_challenge",
    "pack_old_send_name",
    "pack_send_name",
    "pack_status",
    "parse_challenge",
    "parse_challenge_ack",
    "parse_challenge_reply",
    "parse_complement",
    "parse_length",
    "parse_send_name",
    "parse_status",
]

#: A handshake body is at most this long: a 255-byte alive, a host and a few fields; more is
#: not a node talking. (The 2-byte length would allow 65535.)
MAX_BODY: Final = 2048
#: The statuses an acceptor may send (``named:`` carries a name and a creation after it).
STATUSES: Final = frozenset({"ok", "ok_simultaneous", "nok", "not_allowed", "alive", "named:"})
_OLD_VERSION: Final = 5
_DIGEST_LEN: Final = 16


class WireError(ValueError):
    """A handshake body is malformed (wrong tag, length or field)."""


def frame(body: bytes, length_size: int = 2) -> bytes:
    """``body`` with its length in front: 2 bytes over TCP, 4 over TLS (``inet_tls``)."""
    if len(body) > 0xFFFF:
        raise ValueError(f"a handshake message is at most 65535 bytes, not {len(body)}")
    return len(body).to_bytes(length_size, "big") + body


def parse_length(header: bytes, length_size: int = 2) -> int:
    """The body length a header announces; refuses zero and more than ``MAX_BODY``.

    Over TCP the header has 2 bytes; OTP's TLS distribution frames the handshake with 4.
    """
    if len(header) != length_size:
        raise WireError(f"a length header is {length_size} bytes, not {len(header)}")
    length = int.from_bytes(header, "big")
    if length == 0 or length > MAX_BODY:
        raise WireError(f"a handshake message of {length} bytes (1 to {MAX_BODY} expected)")
    return int(length)


def digest(cookie: str, challenge: int) -> bytes:
    """The 16-byte answer to ``challenge``: ``md5(cookie + decimal(challenge))``.

    Args:
        cookie: the shared secret.
        challenge: the challenge, read as an unsigned 32-bit number.

    Returns:
        The MD5 digest.
    """
    text = cookie + str(challenge & 0xFFFFFFFF)
    return hashlib.md5(text.encode("latin-1"), usedforsecurity=False).digest()


def digest_matches(cookie: str, challenge: int, received: bytes) -> bool:
    """Whether ``received`` answers ``challenge`` for ``cookie`` (constant-time comparison)."""
    return hmac.compare_digest(digest(cookie, challenge), received)


def _decode_name(raw: bytes, what: str) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"the {what} is not UTF-8: {raw!r}") from None
    if not name:
        raise WireError(f"the {what} is empty")
    return name


def _tag(body: bytes, tags: bytes, what: str) -> int:
    if not body or body[0] not in tags:
        want = " or ".join(repr(chr(t)) for t in tags)
        got = repr(chr(body[0])) if body else "nothing"
        raise WireError(f"{what}: expected tag {want}, got {got}")
    return body[0]


@final
@dataclass(frozen=True, slots=True)
class SendName:
    """Step 1, A's name and capabilities.

    ``creation`` is None for the old ``'n'`` form (it comes in the complement), whose
    ``flags`` are only the low 32 bits.
    """

    name: str
    flags: int
    creation: int | None
    old_form: bool = False


def pack_send_name(name: str, flags: int, creation: int) -> bytes:
    """The ``'N'`` send_name body."""
    raw = name.encode("utf-8")
    return b"N" + struct.pack(">QIH", flags, creation, len(raw)) + raw


def pack_old_send_name(name: str, flags: int, version: int = _OLD_VERSION) -> bytes:
    """The old ``'n'`` send_name body (OTP 23/24 nodes that did not ask EPMD the version)."""
    return b"n" + struct.pack(">HI", version, flags & 0xFFFFFFFF) + name.encode("utf-8")


def parse_send_name(body: bytes) -> SendName:
    """Read a send_name body of either form; bytes after the new form's name are ignored."""
    tag = _tag(body, b"Nn", "send_name")
    if tag == ord("n"):
        if len(body) < 8:
            raise WireError(f"old send_name: {len(body)} bytes, at least 8 expected")
        version, flags = struct.unpack_from(">HI", body, 1)
        if version != _OLD_VERSION:
            raise WireError(f"old send_name: version {version}, 5 expected")
        return SendName(_decode_name(body[7:], "node name"), flags, None, old_form=True)
    if len(body) < 15:
        raise WireError(f"send_name: {len(body)} bytes, at least 15 expected")
    flags, creation, length = struct.unpack_from(">QIH", body, 1)
    if len(body) < 15 + length:
        raise WireError(f"send_name: name of {length} bytes, only {len(body) - 15} present")
    return SendName(_decode_name(body[15 : 15 + length], "node name"), flags, creation)


@final
@dataclass(frozen=True, slots=True)
class Status:
    """Step 2, B's verdict; ``named:`` carries the name and creation B gives A."""

    status: str
    name: str | None = None
    creation: int | None = None


def pack_status(status: str, *, name: str | None = None, creation: int = 0) -> bytes:
    """A status body (``'s'`` + text); ``named:`` also takes ``name`` and ``creation``.

    Also the initiator's ``true``/``false`` answer to ``alive``.
    """
    body = b"s" + status.encode("ascii")
    if status == "named:":
        if name is None:
            raise ValueError("the named: status needs the name given to the peer")
        raw = name.encode("utf-8")
        body += struct.pack(">H", len(raw)) + raw + struct.pack(">I", creation)
    return body


def parse_status(body: bytes, allowed: frozenset[str] = STATUSES) -> Status:
    """Read a status body; ``allowed`` lists the texts accepted (default: B's statuses)."""
    _tag(body, b"s", "status")
    if body.startswith(b"snamed:") and "named:" in allowed:
        rest = body[7:]
        if len(rest) < 2:
            raise WireError("named: status without its name")
        (length,) = struct.unpack_from(">H", rest)
        if len(rest) != 2 + length + 4:
            raise WireError(f"named: status of {len(body)} bytes for a name of {length}")
        (creation,) = struct.unpack_from(">I", rest, 2 + length)
        return Status("named:", _decode_name(rest[2 : 2 + length], "given name"), creation)
    text = body[1:].decode("ascii", errors="replace")
    if text not in allowed or text == "named:":
        raise WireError(f"unknown status {text!r}")
    return Status(text)


@final
@dataclass(frozen=True, slots=True)
class Challenge:
    """Step 3, B's name, capabilities and challenge (creation None for the old form)."""

    name: str
    flags: int
    challenge: int
    creation: int | None
    old_form: bool = False


def pack_challenge(name: str, flags: int, challenge: int, creation: int) -> bytes:
    """The ``'N'`` challenge body."""
    raw = name.encode("utf-8")
    return b"N" + struct.pack(">QIIH", flags, challenge, creation, len(raw)) + raw


def pack_old_challenge(name: str, flags: int, challenge: int) -> bytes:
    """The old ``'n'`` challenge body (a version-5 acceptor)."""
    return (
        b"n"
        + struct.pack(">HII", _OLD_VERSION, flags & 0xFFFFFFFF, challenge)
        + name.encode("utf-8")
    )


def parse_challenge(body: bytes) -> Challenge:
    """Read a challenge body of either form."""
    tag = _tag(body, b"Nn", "challenge")
    if tag == ord("n"):
        if len(body) < 12:
            raise WireError(f"old challenge: {len(body)} bytes, at least 12 expected")
        version, flags, challenge = struct.unpack_from(">HII", body, 1)
        if version != _OLD_VERSION:
            raise WireError(f"old challenge: version {version}, 5 expected")
        name = _decode_name(body[11:], "node name")
        return Challenge(name, flags, challenge, None, old_form=True)
    if len(body) < 19:
        raise WireError(f"challenge: {len(body)} bytes, at least 19 expected")
    flags, challenge, creation, length = struct.unpack_from(">QIIH", body, 1)
    if len(body) != 19 + length:
        raise WireError(f"challenge: {len(body)} bytes for a name of {length}")
    return Challenge(_decode_name(body[19:], "node name"), flags, challenge, creation)


@final
@dataclass(frozen=True, slots=True)
class Complement:
    """Step 3b, after an old ``'n'`` send_name: the high flag bits and A's creation."""

    flags_high: int
    creation: int


def pack_complement(flags: int, creation: int) -> bytes:
    """The ``'c'`` complement body: the high 32 bits of ``flags`` and the creation."""
    return b"c" + struct.pack(">II", flags >> 32, creation)


def parse_complement(body: bytes) -> Complement:
    """Read a complement body."""
    _tag(body, b"c", "complement")
    if len(body) != 9:
        raise WireError(f"complement: {len(body)} bytes, 9 expected")
    high, creation = struct.unpack_from(">II", body, 1)
    return Complement(high, creation)


@final
@dataclass(frozen=True, slots=True)
class ChallengeReply:
    """Step 4, A's own challenge and its digest of B's."""

    challenge: int
    digest: bytes


def pack_challenge_reply(challenge: int, answer: bytes) -> bytes:
    """The ``'r'`` body: A's challenge and ``answer``, its digest of B's challenge."""
    if len(answer) != _DIGEST_LEN:
        raise ValueError(f"a digest is 16 bytes, not {len(answer)}")
    return b"r" + struct.pack(">I", challenge) + answer


def parse_challenge_reply(body: bytes) -> ChallengeReply:
    """Read a challenge_reply body."""
    _tag(body, b"r", "challenge_reply")
    if len(body) != 1 + 4 + _DIGEST_LEN:
        raise WireError(f"challenge_reply: {len(body)} bytes, 21 expected")
    (challenge,) = struct.unpack_from(">I", body, 1)
    return ChallengeReply(challenge, body[5:])


def pack_challenge_ack(answer: bytes) -> bytes:
    """The ``'a'`` body: B's digest of A's challenge."""
    if len(answer) != _DIGEST_LEN:
        raise ValueError(f"a digest is 16 bytes, not {len(answer)}")
    return b"a" + answer


def parse_challenge_ack(body: bytes) -> bytes:
    """Read a challenge_ack body; returns the digest."""
    _tag(body, b"a", "challenge_ack")
    if len(body) != 1 + _DIGEST_LEN:
        raise WireError(f"challenge_ack: {len(body)} bytes, 17 expected")
    return body[1:]
