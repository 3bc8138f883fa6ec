"""Hostile input: every bad input is a ``TermDecodeError``, found before work is wasted."""

from __future__ import annotations

import struct
import zlib

import pytest

from server.dist import Limits, TermDecodeError, decode, decode_at
from tests.dist.fixtures.erts_otp25 import ERTS_OTP25

TRUNCATABLE = [
    "gen_call",
    "closure",
    "map_collision",
    "large_big",
    "bits_long",
    "atom_255",
    "port_v4",
    "large_tuple",
    "alias_tag",
    "export",
    "float",
    "string",
]


@pytest.mark.parametrize("name", TRUNCATABLE)
def test_a_term_truncated_at_any_offset_is_refused(name: str) -> None:
    data = ERTS_OTP25[name]
    for cut in range(len(data)):
        with pytest.raises(TermDecodeError):
            decode(data[:cut])


@pytest.mark.parametrize("name", TRUNCATABLE)
def test_trailing_bytes_are_refused(name: str) -> None:
    with pytest.raises(TermDecodeError, match="1 bytes after the term"):
        decode(ERTS_OTP25[name] + b"\x00")


U32_MAX = b"\xff\xff\xff\xff"


@pytest.mark.parametrize(
    "data",
    [
        b"\x83l" + U32_MAX + b"a\x01j",  # a list of 4 G elements in 10 bytes
        b"\x83h\xff",
        b"\x83i" + U32_MAX,
        b"\x83t" + U32_MAX + b"a\x01",
        b"\x83m" + U32_MAX + b"ab",
        b"\x83M" + U32_MAX + b"\x03ab",
        b"\x83k\xff\xffab",
        b"\x83w\xffab",
        b"\x83v\xff\xffab",
        b"\x83o" + U32_MAX + b"\x00ab",
        b"\x83Z\xff\xffw\x03a@b\x00\x00\x00\x01",
        b"\x83p" + U32_MAX + b"\x01" + bytes(30),
    ],
    ids=[
        "list",
        "small tuple",
        "large tuple",
        "map",
        "binary",
        "bit string",
        "string",
        "small atom",
        "atom",
        "large big",
        "reference words",
        "fun size",
    ],
)
def test_length_fields_beyond_the_input_are_refused_at_once(data: bytes) -> None:
    with pytest.raises(TermDecodeError) as caught:
        decode(data)
    assert caught.value.offset == 1  # the tag of the lying header


def test_a_million_deep_list_is_refused_without_recursion() -> None:
    data = b"\x83" + b"l\x00\x00\x00\x01" * 1_000_000 + b"j" * 1_000_001
    with pytest.raises(TermDecodeError, match="nested deeper than 1000") as caught:
        decode(data)
    assert caught.value.offset == 1 + 5 * 1000
    nested_tuples = b"\x83" + b"h\x01" * 50 + b"j"
    assert decode(nested_tuples, limits=Limits(max_depth=50)) is not None
    with pytest.raises(TermDecodeError, match="nested deeper than 49"):
        decode(nested_tuples, limits=Limits(max_depth=49))


def test_too_many_atoms_are_refused() -> None:
    data = b"\x83l\x00\x00\x00\x03" + b"w\x01a" * 3 + b"j"
    assert decode(data, limits=Limits(max_atoms=3)) == ["a", "a", "a"]
    with pytest.raises(TermDecodeError, match="more than 2 atoms"):
        decode(data, limits=Limits(max_atoms=2))


def test_big_inputs_and_bignums_are_bounded() -> None:
    with pytest.raises(TermDecodeError, match="exceeds the limit of 4"):
        decode(b"\x83m\x00\x00\x00\x00", limits=Limits(max_bytes=4))
    big = b"\x83n\x10\x00" + b"\x01" * 16
    assert decode(big, limits=Limits(max_big_bytes=16)) == int.from_bytes(b"\x01" * 16, "little")
    with pytest.raises(TermDecodeError, match="bignum of 16 bytes"):
        decode(big, limits=Limits(max_big_bytes=15))


def compressed(body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return b"\x83P" + struct.pack(">I", size) + zlib.compress(body)


def test_a_compression_bomb_is_stopped_at_its_declared_size() -> None:
    bomb = b"m" + struct.pack(">I", 10_000_000) + bytes(10_000_000)
    with pytest.raises(TermDecodeError, match="declares 20 bytes but holds more"):
        decode(compressed(bomb, declared=20))
    with pytest.raises(TermDecodeError, match="exceeds the limit"):
        decode(compressed(bomb), limits=Limits(max_bytes=1_000_000))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (compressed(b"a\x01", declared=3), "inflates to 2"),
        (compressed(b"a\x01a\x02"), "2 bytes after the term"),
        (compressed(b"h\x02a\x01"), "input ends inside a term"),
        (b"\x83P\x00\x00\x00\x02notzlib", "not valid zlib"),
        (b"\x83P\x00\x00", "without its size"),
        (compressed(b"a\x01")[:-3], "truncated"),
    ],
    ids=["short", "trailing inside", "truncated term inside", "not zlib", "no size", "cut"],
)
def test_bad_compressed_input_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(TermDecodeError, match=match):
        decode(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "input ends here"),
        (b"\x83", "no term after the version byte"),
        (b"\x82a\x01", "version byte is 130"),
        (b"\x83\x01", "unknown tag 1"),
        (b"\x83u", "unknown tag 117"),
        (b"\x83y\x00", "LOCAL_EXT"),
        (b"\x83t\x00\x00\x00\x02a\x01a\x01a\x01a\x02", "same Erlang term"),
        (b"\x83w\x02\xff\xfe", "not valid UTF-8"),
        (b"\x83v\x02\x00" + "é".encode() * 256, "255 characters"),
        (b"\x83F\x7f\xf0\x00\x00\x00\x00\x00\x00", "inf does not exist"),
        (b"\x83F\x7f\xf8\x00\x00\x00\x00\x00\x00", "nan does not exist"),
        (b"\x83c" + b"nope".ljust(31, b"\0"), "not a float"),
        (b"\x83n\x01\x02\x05", "sign byte is 2"),
        (b"\x83M\x00\x00\x00\x01\x00\x00", "bit string"),
        (b"\x83M\x00\x00\x00\x00\x03", "bit string"),
        (b"\x83Xa\x01", "expected an atom"),
        (b"\x83qw\x01mw\x01fb\x00\x00\x00\x01", "arity has tag 98"),
        (b"\x83R\x00", "atom cache"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_terms_say_what_and_where(data: bytes, match: str) -> None:
    with pytest.raises(TermDecodeError, match=match) as caught:
        decode(data)
    assert "at offset" in str(caught.value)


def test_a_fun_whose_size_field_lies_is_refused() -> None:
    data = bytearray(ERTS_OTP25["closure"])
    size = struct.unpack_from(">I", data, 2)[0]
    struct.pack_into(">I", data, 2, size - 1)
    with pytest.raises(TermDecodeError, match="NEW_FUN_EXT size"):
        decode(bytes(data) + b"\x00")


def test_decode_at_refuses_an_offset_past_the_end() -> None:
    with pytest.raises(TermDecodeError, match="input ends here"):
        decode_at(b"\x83a\x01", 3, versioned=True)
    with pytest.raises(TermDecodeError, match="input ends here"):
        decode_at(b"\x83a\x01", -1, versioned=True)
