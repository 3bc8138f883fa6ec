"""The handshake's pure core: every message packed and parsed, and each malformed body."""

from __future__ import annotations

import struct

import pytest

from server.dist import _handshake_wire as wire
from server.dist.flags import HIDDEN_FLAGS, MANDATORY

DIGEST = bytes(range(16))


def test_frame_and_length() -> None:
    assert wire.frame(b"abc") == b"\x00\x03abc"
    assert wire.parse_length(b"\x00\x03") == 3
    with pytest.raises(ValueError, match="65535"):
        wire.frame(b"x" * 65536)


@pytest.mark.parametrize("header", [b"\x00\x00", b"\xff\xff", b"\x08\x01", b"\x00"])
def test_bad_lengths(header: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_length(header)


def test_send_name_bytes() -> None:
    body = wire.pack_send_name("py@localhost", HIDDEN_FLAGS, 7)
    assert body == b"N" + struct.pack(">QIH", HIDDEN_FLAGS, 7, 12) + b"py@localhost"
    assert wire.parse_send_name(body) == wire.SendName("py@localhost", HIDDEN_FLAGS, 7)


def test_send_name_ignores_extra_bytes() -> None:
    body = wire.pack_send_name("py@vm", MANDATORY, 1) + b"future fields"
    assert wire.parse_send_name(body).name == "py@vm"


def test_old_send_name() -> None:
    body = wire.pack_old_send_name("old@vm", HIDDEN_FLAGS)
    assert body == b"n\x00\x05" + struct.pack(">I", HIDDEN_FLAGS & 0xFFFFFFFF) + b"old@vm"
    assert wire.parse_send_name(body) == wire.SendName(
        "old@vm", HIDDEN_FLAGS & 0xFFFFFFFF, None, old_form=True
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "nothing"),
        (b"X" + bytes(20), "'X'"),
        (b"N" + bytes(10), "at least 15"),
        (b"N" + struct.pack(">QIH", 0, 1, 10) + b"short", "only 5"),
        (b"N" + struct.pack(">QIH", 0, 1, 0), "empty"),
        (b"N" + struct.pack(">QIH", 0, 1, 2) + b"\xff\xfe", "UTF-8"),
        (b"n\x00\x05\x00", "at least 8"),
        (b"n\x00\x06" + bytes(4) + b"a@b", "version 6"),
        (b"n\x00\x05" + bytes(4), "at least 8"),
    ],
)
def test_malformed_send_names(body: bytes, fragment: str) -> None:
    with pytest.raises(wire.WireError, match=fragment):
        wire.parse_send_name(body)


@pytest.mark.parametrize("status", ["ok", "ok_simultaneous", "nok", "not_allowed", "alive"])
def test_statuses(status: str) -> None:
    body = wire.pack_status(status)
    assert body == b"s" + status.encode()
    assert wire.parse_status(body) == wire.Status(status)


def test_named_status() -> None:
    body = wire.pack_status("named:", name="x@vm", creation=9)
    assert body == b"snamed:\x00\x04x@vm\x00\x00\x00\x09"
    assert wire.parse_status(body) == wire.Status("named:", "x@vm", 9)


def test_named_status_needs_its_name() -> None:
    with pytest.raises(ValueError, match="named"):
        wire.pack_status("named:")


@pytest.mark.parametrize(
    "body", [b"sbogus", b"snamed:", b"snamed:\x00", b"snamed:\x00\x04x@vm\x00", b"xok", b""]
)
def test_malformed_statuses(body: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_status(body)


def test_the_answer_to_alive() -> None:
    answers = frozenset({"true", "false"})
    assert wire.parse_status(b"strue", answers).status == "true"
    assert wire.parse_status(b"sfalse", answers).status == "false"
    with pytest.raises(wire.WireError):
        wire.parse_status(b"sok", answers)
    with pytest.raises(wire.WireError):
        wire.parse_status(b"strue")


def test_challenge_bytes() -> None:
    body = wire.pack_challenge("e1@vm", HIDDEN_FLAGS, 0xDEADBEEF, 42)
    assert body == b"N" + struct.pack(">QIIH", HIDDEN_FLAGS, 0xDEADBEEF, 42, 5) + b"e1@vm"
    assert wire.parse_challenge(body) == wire.Challenge("e1@vm", HIDDEN_FLAGS, 0xDEADBEEF, 42)


def test_old_challenge() -> None:
    body = wire.pack_old_challenge("e1@vm", MANDATORY, 5)
    parsed = wire.parse_challenge(body)
    assert parsed == wire.Challenge("e1@vm", MANDATORY & 0xFFFFFFFF, 5, None, old_form=True)


@pytest.mark.parametrize(
    "body",
    [
        b"N" + bytes(10),
        b"N" + struct.pack(">QIIH", 0, 1, 1, 5) + b"e1@vm!",  # longer than its name
        b"N" + struct.pack(">QIIH", 0, 1, 1, 6) + b"e1@vm",
        b"n\x00\x05" + bytes(4),
        b"n\x00\x04" + bytes(8) + b"a@b",
        b"r" + bytes(20),
    ],
)
def test_malformed_challenges(body: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_challenge(body)


def test_complement() -> None:
    body = wire.pack_complement(HIDDEN_FLAGS, 77)
    assert body == b"c" + struct.pack(">II", HIDDEN_FLAGS >> 32, 77)
    assert wire.parse_complement(body) == wire.Complement(HIDDEN_FLAGS >> 32, 77)
    for bad in (body[:-1], body + b"x", b"C" + body[1:]):
        with pytest.raises(wire.WireError):
            wire.parse_complement(bad)


def test_challenge_reply() -> None:
    body = wire.pack_challenge_reply(0xFFFFFFFF, DIGEST)
    assert body == b"r\xff\xff\xff\xff" + DIGEST
    assert wire.parse_challenge_reply(body) == wire.ChallengeReply(0xFFFFFFFF, DIGEST)
    for bad in (body[:-1], body + b"x", b"a" + body[1:]):
        with pytest.raises(wire.WireError):
            wire.parse_challenge_reply(bad)


def test_challenge_ack() -> None:
    body = wire.pack_challenge_ack(DIGEST)
    assert body == b"a" + DIGEST
    assert wire.parse_challenge_ack(body) == DIGEST
    for bad in (body[:-1], body + b"x", b"r" + body[1:]):
        with pytest.raises(wire.WireError):
            wire.parse_challenge_ack(bad)


@pytest.mark.parametrize("length", [0, 15, 17])
def test_digests_are_16_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        wire.pack_challenge_reply(1, bytes(length))
    with pytest.raises(ValueError, match="16 bytes"):
        wire.pack_challenge_ack(bytes(length))


def test_a_bad_digest_does_not_match() -> None:
    good = wire.digest("cookie", 12345)
    assert wire.digest_matches("cookie", 12345, good)
    assert not wire.digest_matches("cookie", 12346, good)
    assert not wire.digest_matches("cookie", 12345, bytes(16))


def test_the_core_does_no_io() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(wire.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not imported & {"anyio", "asyncio", "socket", "trio"}
