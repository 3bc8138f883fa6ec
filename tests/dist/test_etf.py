"""The codec, tag by tag: bytes written by erts (fixtures), the mapping table, the options."""

from __future__ import annotations

import ast
import enum
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import pytest

import server.dist
from server.dist import (
    Atom,
    BitString,
    Export,
    ExternalPid,
    ExternalRef,
    Fun,
    ImproperList,
    Map,
    Port,
    TermDecodeError,
    decode,
    decode_at,
    encode,
    encode_into,
    term_key,
)
from tests.dist.fixtures.erts_otp25 import ERTS_OTP25

A = Atom
PID = ExternalPid(A("a@b"), 1, 2, 3)
REF = ExternalRef(A("a@b"), 7, (1, 2, 3))

# What each fixture decodes to (funs are checked by re-encoding only).
EXPECTED: dict[str, object] = {
    "small_int": 42,
    "int_255": 255,
    "int_256": 256,
    "int_minus_1": -1,
    "int_max32": 2**31 - 1,
    "int_min32": -(2**31),
    "big_2_31": 2**31,
    "big_min32_minus_1": -(2**31) - 1,
    "big_2_64": 2**64,
    "big_neg_2_64": -(2**64),
    "large_big": 2**2100,
    "float": 1.5,
    "neg_zero": -0.0,
    "atom": A("ok"),
    "atom_true": True,
    "atom_undefined": None,
    "atom_empty": A(""),
    "atom_emoji": A("\U0001f600"),
    "atom_255": A("x" * 255),
    "atom_long_utf8": A("\U0001f600" * 100),
    "binary": "key",
    "binary_latin1": b"\xff\x00",
    "binary_empty": "",
    "bits": BitString(b"\xa0", 3),
    "bits_long": BitString(b"\x01\x02\x18", 5),
    "nil": [],
    "string": [97, 98, 99],
    "list": [1, A("a"), "b"],
    "list_big": [1000],
    "improper": ImproperList((A("a"),), A("b")),
    "alias_tag": ImproperList((A("alias"),), REF),
    "tuple_empty": (),
    "tuple": (A("a"), 1),
    "large_tuple": tuple(range(1, 257)),
    "map_empty": {},
    "map": {A("b"): 1, A("a"): 2, 1: A("x"), "k": A("y")},
    "map_collision": Map([(1, A("a")), (1.0, A("b"))]),
    "map_list_key": Map([([1], A("a"))]),
    "pid": PID,
    "ref": REF,
    "port": Port(A("a@b"), 5, 6),
    "port_v4": Port(A("a@b"), 2**40, 6),
    "export": Export(A("lists"), A("map"), 2),
    "gen_call": (A("$gen_call"), (PID, ImproperList((A("alias"),), REF)), (A("incr"), "key")),
}


def exact(term: object) -> tuple[object, ...]:
    """Compare terms as Erlang's ``=:=`` does (types too), by their order keys."""
    return term_key(term)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_erts_bytes_decode_to_the_model(name: str) -> None:
    decoded = decode(ERTS_OTP25[name])
    assert exact(decoded) == exact(EXPECTED[name])
    assert type(decoded) is type(EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_model_encodes_to_erts_bytes(name: str) -> None:
    assert encode(EXPECTED[name]) == ERTS_OTP25[name]


@pytest.mark.parametrize("name", sorted(ERTS_OTP25))
def test_erts_bytes_reencode_byte_for_byte(name: str) -> None:
    assert encode(decode(ERTS_OTP25[name])) == ERTS_OTP25[name]


def test_funs_keep_every_field() -> None:
    closure = decode(ERTS_OTP25["closure"])
    assert isinstance(closure, Fun)
    assert closure.module == "codec_oracle"
    assert closure.arity == 1
    assert closure.free_vars == (PID,)
    assert isinstance(closure.pid, ExternalPid)
    local = decode(ERTS_OTP25["local_fun"])
    assert isinstance(local, Fun)
    assert local.free_vars == ()


# -- the mapping table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("text é", "text é"),
        (b"text", "text"),  # bytes that are valid UTF-8 come back as str
        (b"\xff\xfe", b"\xff\xfe"),
        (bytearray(b"\xff"), b"\xff"),
        (memoryview(b"\xff"), b"\xff"),
        (None, None),
        (True, True),
        (False, False),
        (A("true"), True),
        (A("undefined"), None),
        ([], []),
        ([1, 2, 3], [1, 2, 3]),
        ([True], [True]),
        ((), ()),
        ({}, {}),
        (BitString(b"ab", 8), "ab"),
    ],
    ids=repr,
)
def test_the_mapping_table(value: object, decoded: object) -> None:
    result = decode(encode(value))
    assert exact(result) == exact(decoded)
    assert type(result) is type(decoded)


def test_a_python_string_is_a_binary_and_a_list_of_bytes_is_a_string() -> None:
    assert encode("ab") == b"\x83m\x00\x00\x00\x02ab"
    assert encode([97, 98]) == b"\x83k\x00\x02ab"
    assert encode([True]) == b"\x83l\x00\x00\x00\x01w\x04truej"  # bools are atoms
    assert encode([256]) == b"\x83l\x00\x00\x00\x01b\x00\x00\x01\x00j"
    assert encode([1] * 65536)[:6] == b"\x83l\x00\x01\x00\x00"  # too long for STRING_EXT


@pytest.mark.parametrize(
    "value",
    [
        0,
        255,
        256,
        -1,
        2**31 - 1,
        -(2**31),
        2**31,
        -(2**31) - 1,
        2**64,
        -(2**64),
        2**2040 - 1,
        2**2040,
        2**2048,
        -(2**9000),
        10**600,
    ],
)
def test_integer_edges_round_trip_in_shortest_form(value: int) -> None:
    data = encode(value)
    assert decode(data) == value
    if 0 <= value <= 255:
        assert data[1] == 97
    elif -(2**31) <= value < 2**31:
        assert data[1] == 98
    else:
        n = (abs(value).bit_length() + 7) // 8
        assert data[1] == (110 if n < 256 else 111)
        assert data[-1] != 0  # no leading zero digit


def test_map_collisions_decode_to_a_map() -> None:
    # #{1 => a, 1.0 => b}, #{true => x, 1 => y}, #{[1] => z}
    m = decode(encode(Map([(1, A("a")), (1.0, A("b"))])))
    assert isinstance(m, Map)
    assert len(m) == 2
    m2 = decode(encode(Map([(True, A("x")), (1, A("y"))])))
    assert isinstance(m2, Map)
    assert m2[True] == A("x")
    assert m2[1] == A("y")
    m3 = decode(encode(Map([(0.0, 1), (-0.0, 2)])))
    assert isinstance(m3, Map)
    assert len(m3) == 2
    plain = decode(encode({A("a"): 1, 2: [3]}))
    assert type(plain) is dict


def test_small_maps_are_written_in_term_order_large_ones_in_their_own() -> None:
    small = {"b": 1, A("z"): 2, 3: 3, 1.0: 4, (1,): 5}
    keys = decode(encode(small))
    assert isinstance(keys, dict)
    assert list(keys) == [3, 1.0, A("z"), (1,), "b"]
    large = {i: i for i in reversed(range(40))}
    assert list(decode(encode(large))) == list(reversed(range(40)))  # type: ignore[call-overload]


def test_a_map_with_two_keys_that_are_one_erlang_term_is_refused() -> None:
    with pytest.raises(ValueError, match="same Erlang term"):
        encode({"ab": 1, b"ab": 2})
    with pytest.raises(ValueError, match="same Erlang term"):
        encode({True: 1, A("true"): 2})
    large: dict[object, int] = {i: i for i in range(40)}
    large.update({None: 1, A("undefined"): 2})
    with pytest.raises(ValueError, match="same Erlang term"):
        encode(large)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinities_cannot_be_encoded(value: float) -> None:
    with pytest.raises(ValueError, match=repr(value)):
        encode(value)


def test_bit_strings_and_ports() -> None:
    assert encode(BitString(b"\xff", 1)) == b"\x83M\x00\x00\x00\x01\x01\x80"
    port = Port(A("a@b"), 5, 6)
    assert encode(port)[1] == 89
    assert encode(port, port_tag="v4")[1] == 120
    assert encode(Port(A("a@b"), 2**28, 6))[1] == 120
    assert decode(encode(port, port_tag="v4")) == port
    with pytest.raises(ValueError, match="port_tag"):
        encode(port, port_tag="v5")  # type: ignore[arg-type]


# -- deprecated and distribution-only tags, decoded from hand-written bytes --------------

NODE_LATIN1 = b"d\x00\x03a@b"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x83c" + b"1.50000000000000000000e+00".ljust(31, b"\0"), 1.5),
        (b"\x83d\x00\x02ok", A("ok")),
        (b"\x83s\x02ok", A("ok")),
        (b"\x83d\x00\x01\xe9", A("é")),  # Latin-1
        (b"\x83v\x00\x02ok", A("ok")),
        (b"\x83g" + NODE_LATIN1 + b"\x00\x00\x00\x01\x00\x00\x00\x02\x03", PID),
        (b"\x83e" + NODE_LATIN1 + b"\x00\x00\x00\x09\x03", ExternalRef(A("a@b"), 3, (9,))),
        (
            b"\x83r\x00\x02" + NODE_LATIN1 + b"\x03\x00\x00\x00\x01\x00\x00\x00\x02",
            ExternalRef(A("a@b"), 3, (1, 2)),
        ),
        (b"\x83f" + NODE_LATIN1 + b"\x00\x00\x00\x05\x03", Port(A("a@b"), 5, 3)),
        (b"\x83l\x00\x00\x00\x01a\x01k\x00\x01\x02", [1, 2]),  # a non-canonical tail
        (b"\x83l\x00\x00\x00\x00a\x07", 7),
        (b"\x83M\x00\x00\x00\x01\x08\xff", b"\xff"),  # 8 bits: a binary
        (b"\x83M\x00\x00\x00\x01\x01\xff", BitString(b"\x80", 1)),  # unused bits cleared
    ],
    ids=[
        "FLOAT_EXT",
        "ATOM_EXT",
        "SMALL_ATOM_EXT",
        "ATOM_EXT latin-1",
        "ATOM_UTF8_EXT",
        "PID_EXT",
        "REFERENCE_EXT",
        "NEW_REFERENCE_EXT",
        "PORT_EXT",
        "list with a list tail",
        "list of no elements",
        "BIT_BINARY_EXT of 8 bits",
        "BIT_BINARY_EXT dirty bits",
    ],
)
def test_old_tags_decode(data: bytes, expected: object) -> None:
    assert exact(decode(data)) == exact(expected)


def test_atom_cache_references_index_the_cache() -> None:
    cache = [A("ok"), A("true"), A("node@h")]
    data = b"\x83h\x03R\x00R\x01X" + b"R\x02" + b"\x00\x00\x00\x01" * 3
    assert decode(data, atom_cache=cache) == (A("ok"), True, ExternalPid(A("node@h"), 1, 1, 1))
    with pytest.raises(TermDecodeError, match="atom cache reference 3"):
        decode(b"\x83R\x03", atom_cache=cache)
    with pytest.raises(TermDecodeError, match="atom cache"):
        decode(b"\x83R\x00")


def test_compressed_input_is_accepted() -> None:
    body = encode(("compressed", list(range(300))))[1:]
    data = b"\x83P" + struct.pack(">I", len(body)) + zlib.compress(body)
    assert decode(data) == ("compressed", list(range(300)))
    _, stop = decode_at(data + b"rest", 0, versioned=True)
    assert stop == len(data)


# -- decode_at and encode_into -----------------------------------------------------------


def test_decode_at_reads_terms_one_after_the_other() -> None:
    frame = bytearray(b"pfx")
    encode_into(frame, (A("control"), 1))
    encode_into(frame, "message")
    term, offset = decode_at(frame, 3, versioned=False)
    assert term == (A("control"), 1)
    term, offset = decode_at(memoryview(frame), offset, versioned=False)
    assert term == "message"
    assert offset == len(frame)
    versioned = encode(1) + encode(2)
    assert decode_at(versioned, 0, versioned=True) == (1, 3)
    assert decode_at(versioned, 3, versioned=True) == (2, 6)


def test_encode_into_leaves_the_buffer_as_it_was_on_error() -> None:
    out = bytearray(b"keep")
    with pytest.raises(TypeError):
        encode_into(out, (1, 2, object()))
    assert out == b"keep"


def test_a_deeply_nested_python_term_is_a_value_error() -> None:
    term: object = []
    for _ in range(100_000):
        term = [term]
    with pytest.raises(ValueError, match="nested too deeply"):
        encode(term)


# -- identities and fallback -------------------------------------------------------------


class RuntimePid(NamedTuple):
    number: int


class RuntimeIds:
    """Runtime pids and refs of their own types, as the node's bridge will make them."""

    def pid(self, node: Atom, id: int, serial: int, creation: int) -> object:  # noqa: A002
        return RuntimePid(id)

    def ref(self, node: Atom, creation: int, words: tuple[int, ...]) -> object:
        return ("ref", words)

    def pid_parts(self, value: object) -> tuple[Atom, int, int, int] | None:
        if isinstance(value, RuntimePid):
            return (A("py@h"), value.number, 0, 1)
        return None

    def ref_parts(self, value: object) -> tuple[Atom, int, tuple[int, ...]] | None:
        return None


def test_identities_make_and_take_apart_runtime_pids() -> None:
    ids = RuntimeIds()
    data = encode(ExternalPid(A("py@h"), 42, 0, 1))
    assert decode(data, identities=ids) == RuntimePid(42)
    assert encode(RuntimePid(42), identities=ids) == data
    # Without the identities a named tuple is just a tuple.
    assert decode(encode(RuntimePid(42))) == (42,)
    assert decode(encode(REF), identities=ids) == ("ref", (1, 2, 3))


class Colour(enum.IntEnum):
    RED = 1


class Record:
    def __init__(self, value: int) -> None:
        self.value = value


def record_to_term(obj: object) -> object:
    if isinstance(obj, Record):
        return (A("record"), obj.value)
    raise TypeError("not a record")


def test_fallback_converts_unknown_objects() -> None:
    assert decode(encode(Record(3), fallback=record_to_term)) == (A("record"), 3)
    assert decode(encode(Colour.RED)) == 1
    with pytest.raises(TypeError, match="cannot encode object as an Erlang term: not a record"):
        encode(object(), fallback=record_to_term)
    with pytest.raises(TypeError, match="cannot encode Record as an Erlang term"):
        encode(Record(3))


# -- the pure core ---------------------------------------------------------------------


def test_the_codec_does_not_import_anyio() -> None:
    root = Path(server.dist.__file__).parent
    for name in ("etf.py", "terms.py"):
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
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
        assert not imported & {"anyio", "asyncio", "trio"}, name
