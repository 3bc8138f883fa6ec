"""The codec against real erts: ``erl`` runs ``codec_oracle.erl`` as a port over stdio.

(a) Hypothesis terms -> ``encode`` -> erts ``binary_to_term`` -> ``term_to_binary(T,
[{minor_version, 2}])`` -> ``decode``: the same term (a ``str``/``bytes`` difference aside),
and the same bytes when no map has more than 32 keys (erts writes those in hash order).
(b) erts' random terms (pids, refs, ports, funs, closures, ``#{1 => _, 1.0 => _}``,
bignums, bit strings, hash maps) -> ``decode`` -> ``encode``: the same bytes.
(c) ``term_key`` sorts map keys as erts does.

Skipped without ``erl``, except on CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.dist import (
    Atom,
    BitString,
    Export,
    ExternalPid,
    ExternalRef,
    ImproperList,
    Map,
    Port,
    decode,
    encode,
    term_key,
)
from tests._support import erlang
from tests._support.erlang import ErlPort

if TYPE_CHECKING:
    from collections.abc import Iterator

# The recursive strategy's repr nests itself at every level; Hypothesis warns when it
# builds it for a message, which says nothing about the codec.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

ORACLE = Path(__file__).with_name("codec_oracle.erl")
EXAMPLES = 800
SEEDS = 800

ORACLE_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the terms Hypothesis draws -----------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
# Not nonode@nohost: erts would take those pids for its own and check them against its
# own limits.
NODES = st.sampled_from([Atom("a@b"), Atom("py@host"), Atom("n\U0001f600@h")])
ATOMS = st.one_of(
    st.sampled_from(
        [Atom(a) for a in ("ok", "a", "", "$gen_call", "true", "false", "undefined", "é")]
    ),
    st.text(max_size=255).map(Atom),
)
EDGES = [0, 255, 256, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**64, -(2**64)]
# Bignums of up to 3,000 bits, built so the strategy's repr stays short.
BIGNUMS = st.builds(
    lambda bits, low, negative: ((1 << bits) + low) * (-1 if negative else 1),
    st.integers(0, 3000),
    st.integers(0, 2**64),
    st.booleans(),
)
INTS = st.one_of(st.integers(), st.sampled_from(EDGES), BIGNUMS)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
# OTP 25 still treats 0.0 and -0.0 as one map key (OTP 27 made them two): keep -0.0 out of
# keys, so a map never holds both.
KEY_FLOATS = FLOATS.map(lambda f: abs(f) if f == 0 else f)
BINARIES = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20),
    st.binary(max_size=5).map(bytearray),
)
BIT_STRINGS = st.builds(BitString, st.binary(min_size=1, max_size=5), st.integers(1, 8))
PIDS = st.builds(ExternalPid, NODES, U32, U32, U32)
REFS = st.builds(ExternalRef, NODES, U32, st.lists(U32, min_size=1, max_size=5).map(tuple))
PORTS = st.builds(Port, NODES, st.one_of(st.integers(0, 2**28), st.integers(0, 2**64 - 1)), U32)
EXPORTS = st.builds(Export, ATOMS, ATOMS, st.integers(0, 255))
BYTE_LISTS = st.lists(st.integers(0, 255), min_size=1, max_size=10)


def scalars(floats: st.SearchStrategy[float], *, hashable: bool) -> st.SearchStrategy[object]:
    common = st.one_of(
        ATOMS,
        INTS,
        floats,
        st.text(max_size=20),
        st.binary(max_size=20),
        BIT_STRINGS,
        PIDS,
        REFS,
        PORTS,
        EXPORTS,
        st.booleans(),
        st.none(),
        st.just(()),
    )
    if hashable:
        return common
    return st.one_of(common, BINARIES, st.just([]), BYTE_LISTS)


HASHABLE_KEY_SCALARS = scalars(KEY_FLOATS, hashable=True)
KEY_SCALARS = scalars(KEY_FLOATS, hashable=False)
# dict keys: hashable ones; Map keys: anything, lists too.
DICT_KEYS = st.one_of(HASHABLE_KEY_SCALARS, st.lists(HASHABLE_KEY_SCALARS, max_size=3).map(tuple))
KEYS = st.one_of(
    KEY_SCALARS,
    st.lists(KEY_SCALARS, max_size=3).map(tuple),
    st.lists(KEY_SCALARS, min_size=1, max_size=3),
)
SMALL_VALUES = st.one_of(ATOMS, st.integers(), st.text(max_size=5), PIDS)
TAILS = st.one_of(ATOMS, INTS, REFS, BINARIES, BIT_STRINGS, st.just(()))


def containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    def pairs(
        low: int, high: int, keys: st.SearchStrategy[object] = DICT_KEYS
    ) -> st.SearchStrategy[list[tuple[object, object]]]:
        return st.lists(
            st.tuples(keys, children),
            min_size=low,
            max_size=high,
            unique_by=lambda pair: term_key(pair[0]),
        )

    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.builds(
            lambda items, tail: ImproperList(tuple(items), tail),
            st.lists(children, min_size=1, max_size=3),
            TAILS,
        ),
        pairs(0, 6).map(dict),
        pairs(0, 6, KEYS).map(Map),
        st.builds(lambda a, b: Map([(1, a), (1.0, b)]), children, children),
        # Hash-order maps: integer keys (always distinct) and a few others.
        st.builds(
            lambda values, more: {**dict(enumerate(values)), **dict(more)},
            st.lists(SMALL_VALUES, min_size=33, max_size=40),
            pairs(0, 3),
        ),
    )


TERMS = st.recursive(scalars(FLOATS, hashable=False), containers, max_leaves=25)


# -- helpers ---------------------------------------------------------------------------


def has_big_map(term: object) -> bool:
    if isinstance(term, dict | Map):
        return len(term) > 32 or any(has_big_map(k) or has_big_map(v) for k, v in term.items())
    if isinstance(term, tuple | list):
        return any(has_big_map(item) for item in term)
    if isinstance(term, ImproperList):
        return any(has_big_map(item) for item in term.items) or has_big_map(term.tail)
    return False


def check_binary_rule(term: object) -> None:
    """Decoded binaries are ``str`` when valid UTF-8, else ``bytes``; nothing else."""
    if isinstance(term, bytes):
        with pytest.raises(UnicodeDecodeError):
            term.decode("utf-8")
    assert not isinstance(term, bytearray | memoryview)
    if isinstance(term, dict | Map):
        for key, value in term.items():
            check_binary_rule(key)
            check_binary_rule(value)
    elif isinstance(term, tuple | list):
        for item in term:
            check_binary_rule(item)
    elif isinstance(term, ImproperList):
        for item in term.items:
            check_binary_rule(item)
        check_binary_rule(term.tail)


class Oracle:
    def __init__(self, port: ErlPort) -> None:
        self.port = port

    def call(self, op: int, payload: bytes) -> bytes:
        reply = self.port.request(bytes((op,)) + payload)
        assert reply[0] == 0, reply[1:].decode("utf-8", "replace")
        return reply[1:]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    port = ErlPort(ORACLE, tmp_path_factory.mktemp("codec_oracle"))
    try:
        yield Oracle(port)
    finally:
        port.stop()


# -- the properties ----------------------------------------------------------------------


@ORACLE_SETTINGS
@given(term=TERMS)
def test_python_terms_come_back_from_erts(oracle: Oracle, term: object) -> None:
    data = encode(term)
    back = oracle.call(1, data)
    decoded = decode(back)
    assert term_key(decoded) == term_key(term)
    check_binary_rule(decoded)
    if not has_big_map(term):
        assert back == data


@pytest.mark.parametrize("chunk", range(4), ids=lambda c: f"seeds {c * SEEDS // 4}..")
def test_erts_terms_reencode_byte_for_byte(oracle: Oracle, chunk: int) -> None:
    for seed in range(chunk * SEEDS // 4, (chunk + 1) * SEEDS // 4):
        data = oracle.call(2, struct.pack(">I", seed))
        assert encode(decode(data)) == data, f"seed {seed}"


@settings(ORACLE_SETTINGS, max_examples=200)
@given(keys=st.lists(st.one_of(KEYS, PIDS, REFS, PORTS), max_size=32, unique_by=term_key))
def test_term_key_orders_map_keys_as_erts(oracle: Oracle, keys: list[object]) -> None:
    ordered = decode(oracle.call(3, encode(keys)))
    assert isinstance(ordered, list)
    assert [term_key(k) for k in ordered] == sorted(term_key(k) for k in keys)


@settings(ORACLE_SETTINGS, max_examples=300)
@given(term=TERMS)
def test_terms_round_trip_in_python(term: object) -> None:
    # The same terms without erts: decode(encode(t)) is t, the str/bytes rule aside.
    decoded = decode(encode(term))
    assert term_key(decoded) == term_key(term)
    check_binary_rule(decoded)
    if not has_big_map(term):
        assert encode(decoded) == encode(term)


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("", "skip")])
def test_a_missing_erl_fails_on_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected):
        erlang.require_erl()
