"""The term model: atoms, bit strings, improper lists, maps with Erlang keys, term order."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

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
    PlainIdentities,
    Port,
    term_key,
)

PID = ExternalPid(Atom("a@b"), 1, 2, 3)
REF = ExternalRef(Atom("a@b"), 7, (1, 2, 3))
PORT = Port(Atom("a@b"), 5, 6)


# -- exports -----------------------------------------------------------------------------


@pytest.mark.parametrize("module_name", ["server.dist", "server.dist.terms", "server.dist.etf"])
def test_all_names_exist_once(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert len(module.__all__) == len(set(module.__all__))  # ruff (RUF022) keeps the order
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


@pytest.mark.parametrize("module_name", ["server.dist.terms", "server.dist.etf"])
def test_every_public_definition_is_in_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
    }
    assert defined <= set(module.__all__)


def test_the_package_re_exports_its_modules_names() -> None:
    for name in server.dist.__all__:
        value = getattr(server.dist, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            module = value.__module__
            assert module in ("server.dist", "server.errors") or not module.split(".")[
                -1
            ].startswith("_")


# -- atoms -------------------------------------------------------------------------------


def test_an_atom_is_its_text() -> None:
    assert Atom("normal") == "normal"
    assert hash(Atom("normal")) == hash("normal")
    assert {"normal": 1}[Atom("normal")] == 1
    assert repr(Atom("ok")) == "Atom('ok')"
    assert isinstance(Atom("ok"), str)


def test_an_atom_holds_at_most_255_characters() -> None:
    assert len(Atom("\U0001f600" * 255)) == 255
    with pytest.raises(ValueError, match="255"):
        Atom("x" * 256)


def test_atoms_cannot_be_subclassed_or_given_attributes() -> None:
    with pytest.raises(AttributeError):
        Atom("a").extra = 1  # type: ignore[attr-defined]


# -- bit strings, improper lists ---------------------------------------------------------


def test_a_bit_string_clears_its_unused_bits() -> None:
    bits = BitString(b"\x01\xff", 3)
    assert bits.data == b"\x01\xe0"
    assert bits.bit_size == 11
    assert bits == BitString(b"\x01\xe0", 3)


@pytest.mark.parametrize(("data", "bits"), [(b"", 3), (b"\x00", 0), (b"\x00", 9)])
def test_a_bit_string_refuses_impossible_shapes(data: bytes, bits: int) -> None:
    with pytest.raises(ValueError, match=r"BitString|bits"):
        BitString(data, bits)


def test_an_improper_list_needs_items_and_a_tail_that_is_not_a_list() -> None:
    assert ImproperList((Atom("alias"),), REF).tail == REF
    with pytest.raises(ValueError, match="at least one"):
        ImproperList((), Atom("b"))
    with pytest.raises(ValueError, match="tail"):
        ImproperList((1,), [2])
    with pytest.raises(ValueError, match="tail"):
        ImproperList((1,), ImproperList((2,), 3))


def test_value_types_are_frozen() -> None:
    for value in (PID, REF, PORT, Export(Atom("m"), Atom("f"), 1), BitString(b"\x80", 1)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, Atom("x"))


@pytest.mark.parametrize(
    "build",
    [
        lambda: ExternalPid(Atom("a@b"), 2**32, 0, 0),
        lambda: ExternalPid(Atom("a@b"), 0, -1, 0),
        lambda: ExternalRef(Atom("a@b"), 0, (2**32,)),
        lambda: Port(Atom("a@b"), 2**64, 0),
        lambda: Export(Atom("m"), Atom("f"), 256),
        lambda: Fun(1, b"short", 0, Atom("m"), 0, 0, PID),
    ],
    ids=["pid id", "pid serial", "ref word", "port id", "arity", "fun uniq"],
)
def test_out_of_range_fields_are_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=r"must be|arity|uniq"):
        build()


def test_nodes_given_as_str_become_atoms() -> None:
    pid = ExternalPid("a@b", 1, 2, 3)  # type: ignore[arg-type]
    assert type(pid.node) is Atom


def test_plain_identities_make_and_take_apart_external_pids_and_refs() -> None:
    ids = PlainIdentities()
    assert ids.pid(Atom("a@b"), 1, 2, 3) == PID
    assert ids.ref(Atom("a@b"), 7, (1, 2, 3)) == REF
    assert ids.pid_parts(PID) == (Atom("a@b"), 1, 2, 3)
    assert ids.ref_parts(REF) == (Atom("a@b"), 7, (1, 2, 3))
    assert ids.pid_parts(REF) is None
    assert ids.ref_parts(PID) is None


# -- maps --------------------------------------------------------------------------------


def test_a_map_keeps_keys_a_dict_would_merge() -> None:
    m = Map([(1, Atom("a")), (1.0, Atom("b")), (True, Atom("c")), (0.0, 1), (-0.0, 2)])
    assert len(m) == 5
    assert m[1] == Atom("a")
    assert m[1.0] == Atom("b")
    assert m[True] == Atom("c")
    assert m[Atom("true")] == Atom("c")
    assert m[0.0] == 1
    assert m[-0.0] == 2
    assert list(m) == [1, 1.0, True, 0.0, -0.0]
    assert m.pairs()[0] == (1, Atom("a"))


def test_a_map_takes_unhashable_keys() -> None:
    m = Map([([1, 2], "list"), ({Atom("k"): 1}, "map"), (bytearray(b"x"), "bin")])
    assert m[[1, 2]] == "list"
    assert m[{Atom("k"): 1}] == "map"
    assert m["x"] == "bin"  # the same binary
    assert [1, 2] in m
    assert [1, 3] not in m
    assert m.get([9]) is None
    with pytest.raises(KeyError):
        m[[3]]


def test_a_map_refuses_two_keys_that_are_one_erlang_term() -> None:
    with pytest.raises(ValueError, match="same Erlang term"):
        Map([("ab", 1), (b"ab", 2)])
    with pytest.raises(ValueError, match="same Erlang term"):
        Map([(True, 1), (Atom("true"), 2)])


def test_map_equality_is_erlangs() -> None:
    m = Map([(1, Atom("a")), (1.0, Atom("b"))])
    assert m == Map([(1.0, Atom("b")), (1, Atom("a"))])
    assert m != Map([(1, Atom("a")), (2.0, Atom("b"))])
    assert Map([(1, 2)]) == {1: 2}
    assert {1: 2} == Map([(1, 2)])  # noqa: SIM300 (the dict on the left: its __eq__ defers)
    assert Map([(1, 2)]) != {1.0: 2}  # keys compare exactly
    assert Map([(1, 2)]) == {1: 2.0}  # values as Erlang's == does
    assert hash(m) == hash(Map([(1.0, Atom("b")), (1, Atom("a"))]))
    assert m != "not a map"


# -- term order --------------------------------------------------------------------------


def test_term_order_classes() -> None:
    fun = Fun(1, bytes(16), 0, Atom("m"), 0, 0, PID)
    ordered = [
        1,
        1.5,
        Atom("a"),
        REF,
        fun,
        Export(Atom("m"), Atom("f"), 1),
        PORT,
        PID,
        (1,),
        {1: 2},
        [],
        [1],
        b"bin",
    ]
    assert sorted(ordered, key=term_key) == ordered
    shuffled = list(reversed(ordered))
    assert sorted(shuffled, key=term_key) == ordered


def test_term_order_puts_every_integer_before_every_float_in_exact_order() -> None:
    assert sorted([2, 1.0, 3, 0.5], key=term_key) == [2, 3, 0.5, 1.0]
    assert sorted([(1.0,), (1,), (0.5,)], key=term_key) == [(1,), (0.5,), (1.0,)]
    assert term_key(-0.0) < term_key(0.0)


def test_term_order_of_atoms_lists_and_bit_strings() -> None:
    assert term_key(True) == term_key(Atom("true"))
    assert term_key(None) == term_key(Atom("undefined"))
    assert term_key([1]) < term_key([1, 2])
    assert term_key(ImproperList((1,), 2)) < term_key([1])  # tail 2 < []
    assert term_key(ImproperList((1,), b"")) > term_key([1, 2])  # a bit string tail
    assert term_key(BitString(b"\x80", 1)) < term_key(b"\x80")  # a prefix first
    assert term_key(BitString(b"\xc0", 2)) > term_key(b"\x80")
    assert term_key("é") == term_key("é".encode())


def test_term_order_of_identifiers_follows_erts() -> None:
    # Pids: serial, id, node, creation. Ports: node, creation, id. Refs: node, creation,
    # then the words as one number (last word most significant).
    assert term_key(ExternalPid(Atom("b@a"), 1, 1, 1)) < term_key(ExternalPid(Atom("a@b"), 2, 1, 1))
    assert term_key(ExternalPid(Atom("a@b"), 9, 1, 1)) < term_key(ExternalPid(Atom("a@b"), 1, 2, 1))
    assert term_key(Port(Atom("a@b"), 9, 1)) < term_key(Port(Atom("a@b"), 1, 2))
    assert term_key(Port(Atom("a@b"), 9, 9)) < term_key(Port(Atom("b@a"), 1, 1))
    assert term_key(ExternalRef(Atom("a@b"), 1, (2, 1))) < term_key(
        ExternalRef(Atom("a@b"), 1, (1, 2))
    )


def test_term_key_asks_identities_about_unknown_objects() -> None:
    class RuntimePid:
        pass

    runtime = RuntimePid()

    class Ids:
        def pid(self, node: Atom, id: int, serial: int, creation: int) -> object:  # noqa: A002
            return runtime

        def ref(self, node: Atom, creation: int, words: tuple[int, ...]) -> object:
            return runtime

        def pid_parts(self, value: object) -> tuple[Atom, int, int, int] | None:
            return (Atom("a@b"), 1, 2, 3) if value is runtime else None

        def ref_parts(self, value: object) -> tuple[Atom, int, tuple[int, ...]] | None:
            return None

    assert term_key(runtime, Ids()) == term_key(PID)
    assert term_key(runtime)[0] == 11  # after every term, but usable as a map key
