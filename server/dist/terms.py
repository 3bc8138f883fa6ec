"""The Python model of Erlang terms, as the external term format codec reads and writes them.

How Erlang terms map to Python values (``decode`` gives the right column, ``encode`` takes
it; rows marked "encode only" are accepted on the way out and never produced on the way in):

===================================  ========================================================
Erlang                               Python
===================================  ========================================================
``true`` / ``false``                 ``True`` / ``False``
``undefined``                        ``None``
any other atom                       :class:`Atom` (a ``str``: ``Atom("ok") == "ok"``)
integer (any size)                   ``int``
float                                ``float`` (NaN and infinities cannot be encoded)
binary, valid UTF-8                  ``str``
binary, not valid UTF-8              ``bytes``
binary (encode only)                 ``str`` (as UTF-8), ``bytes``, ``bytearray``,
                                     ``memoryview``
bit string (not whole bytes)         :class:`BitString`
tuple                                ``tuple``
``[]`` and proper lists              ``list`` (a "string" ``"abc"`` is ``[97, 98, 99]``)
improper list ``[a, b | T]``         :class:`ImproperList` ``((a, b), T)``
map without key clashes in Python    ``dict``
map whose keys clash in Python       :class:`Map` (``1`` and ``1.0``, ``true`` and ``1``,
                                     ``0.0`` and ``-0.0``, unhashable keys such as lists)
pid                                  :class:`ExternalPid`, or what ``Identities.pid`` makes
reference                            :class:`ExternalRef`, or what ``Identities.ref`` makes
port                                 :class:`Port`
``fun M:F/A``                        :class:`Export`
local fun or closure                 :class:`Fun` (opaque: carried and echoed back)
===================================  ========================================================

Consequences worth knowing:

1. Text round-trips between Python nodes (``str`` -> binary -> ``str``), but ``bytes`` that
   happen to be valid UTF-8 come back as ``str``.
2. A Python ``list`` of 1..65535 ints in 0..255 is what Erlang calls a string; it travels
   as ``STRING_EXT`` and comes back as the same ``list``.
3. Atoms ``true``/``false``/``undefined`` become ``True``/``False``/``None``, so
   ``Atom("true")`` is encoded as ``true`` but decodes as ``True``.
4. ``Map`` keys use Erlang's exact equality (``=:=``): same type and same value, with
   ``0.0`` and ``-0.0`` two keys (OTP 27's rule). A ``str`` and the ``bytes`` of its UTF-8
   are the *same* Erlang binary.

:func:`term_key` gives the sort key of Erlang's term order, exact flavour (the one erts uses
for map keys: every integer sorts before every float): number < atom < reference < fun <
port < pid < tuple < map < nil < list < bit string. Two terms are ``=:=`` exactly when their
keys are equal (except funs, whose order erts does not document; see :func:`term_key`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, final

__all__ = [
    "Atom",
    "BitString",
    "Export",
    "ExternalPid",
    "ExternalRef",
    "Fun",
    "Identities",
    "ImproperList",
    "Map",
    "PlainIdentities",
    "Port",
    "term_key",
]

_U32 = 1 << 32
_U64 = 1 << 64


@final
class Atom(str):
    """An Erlang atom: a ``str`` of at most 255 characters that encodes as an atom.

    It compares and hashes equal to its text (``Atom("normal") == "normal"``), so it can be
    matched against plain strings; only the codec tells the two apart.

    Raises:
        ValueError: the text is longer than 255 characters.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> Atom:
        """The atom named ``text``."""
        if len(text) > 255:
            raise ValueError(f"an atom holds at most 255 characters, got {len(text)}")
        return super().__new__(cls, text)

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


def _atom(value: str) -> Atom:
    return value if type(value) is Atom else Atom(value)


def _check_u(name: str, value: int, bound: int) -> None:
    if not 0 <= value < bound:
        raise ValueError(f"{name} must be in 0..{bound - 1}, got {value}")


@final
@dataclass(frozen=True, slots=True)
class BitString:
    """A bit string whose length is not a whole number of bytes.

    Attributes:
        data: the bytes, the last one partly used (its unused low bits are cleared).
        bits: how many high bits of the last byte belong to the value, 1..8.

    Raises:
        ValueError: ``data`` is empty or ``bits`` is outside 1..8.
    """

    data: bytes
    bits: int

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("a BitString needs at least one byte (use b'' for <<>>)")
        if not 1 <= self.bits <= 8:
            raise ValueError(f"bits in the last byte must be 1..8, got {self.bits}")
        data = bytes(self.data)
        mask = (0xFF << (8 - self.bits)) & 0xFF
        if data[-1] & ~mask:
            data = data[:-1] + bytes((data[-1] & mask,))
        object.__setattr__(self, "data", data)

    @property
    def bit_size(self) -> int:
        """The length in bits."""
        return (len(self.data) - 1) * 8 + self.bits


@final
@dataclass(frozen=True, slots=True)
class ImproperList:
    """An improper list ``[items... | tail]`` (``[alias | Ref]`` in ``gen`` call tags).

    Raises:
        ValueError: ``items`` is empty, or ``tail`` is a list (that would be a proper
            list or a longer improper one: build that instead).
    """

    items: tuple[object, ...]
    tail: object

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("an improper list needs at least one element before its tail")
        if type(self.tail) in _LIST_TYPES or isinstance(self.tail, list):
            raise ValueError("the tail of an ImproperList cannot be a list")
        if type(self.items) is not tuple:
            object.__setattr__(self, "items", tuple(self.items))


_LIST_TYPES = frozenset({list, ImproperList})


@final
@dataclass(frozen=True, slots=True)
class ExternalPid:
    """A process identifier as it travels: node, id, serial and creation (NEW_PID_EXT)."""

    node: Atom
    id: int
    serial: int
    creation: int

    def __post_init__(self) -> None:
        node: str = self.node  # a plain str is accepted too
        if type(node) is not Atom:
            object.__setattr__(self, "node", Atom(node))
        if not (0 <= self.id < _U32 and 0 <= self.serial < _U32 and 0 <= self.creation < _U32):
            _check_u("pid id", self.id, _U32)
            _check_u("pid serial", self.serial, _U32)
            _check_u("pid creation", self.creation, _U32)


@final
@dataclass(frozen=True, slots=True)
class ExternalRef:
    """A reference as it travels: node, creation and its 32-bit words (NEWER_REFERENCE_EXT)."""

    node: Atom
    creation: int
    words: tuple[int, ...]

    def __post_init__(self) -> None:
        node: str = self.node  # a plain str is accepted too
        if type(node) is not Atom:
            object.__setattr__(self, "node", Atom(node))
        _check_u("reference creation", self.creation, _U32)
        if type(self.words) is not tuple:
            object.__setattr__(self, "words", tuple(self.words))
        if len(self.words) > 0xFFFF:
            raise ValueError("a reference has at most 65535 words")
        if self.words and not (min(self.words) >= 0 and max(self.words) < _U32):
            for word in self.words:
                _check_u("reference word", word, _U32)


@final
@dataclass(frozen=True, slots=True)
class Port:
    """A port identifier: node, id (up to 64 bits) and creation."""

    node: Atom
    id: int
    creation: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "node", _atom(self.node))
        _check_u("port id", self.id, _U64)
        _check_u("port creation", self.creation, _U32)


@final
@dataclass(frozen=True, slots=True)
class Export:
    """An external fun, ``fun Module:Function/Arity``."""

    module: Atom
    function: Atom
    arity: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "module", _atom(self.module))
        object.__setattr__(self, "function", _atom(self.function))
        _check_u("fun arity", self.arity, 256)


@final
@dataclass(frozen=True, slots=True)
class Fun:
    """A local fun or closure (NEW_FUN_EXT), kept whole so it re-encodes byte for byte.

    Python cannot call it; it can hold it and send it back to Erlang.

    Attributes:
        arity: how many arguments the fun takes.
        uniq: the 16-byte MD5 of the module's code that defines it.
        index: the fun's index in its module's fun table.
        module: the module defining it.
        old_index: the old-style index (an integer term).
        old_uniq: the old-style hash (an integer term).
        pid: the process that created it (as the identities made it).
        free_vars: the captured values of a closure, decoded as terms.
    """

    arity: int
    uniq: bytes
    index: int
    module: Atom
    old_index: int
    old_uniq: int
    pid: object
    free_vars: tuple[object, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "module", _atom(self.module))
        _check_u("fun arity", self.arity, 256)
        _check_u("fun index", self.index, _U32)
        if len(self.uniq) != 16:
            raise ValueError(f"a fun's uniq is 16 bytes, got {len(self.uniq)}")
        if type(self.free_vars) is not tuple:
            object.__setattr__(self, "free_vars", tuple(self.free_vars))


class Identities(Protocol):
    """How pids and references are made from their wire parts, and taken apart again.

    The codec does not know the runtime: the distribution layer passes an implementation
    that turns the wire parts into the node's own pid and reference objects (and back).
    The encoder asks ``pid_parts``/``ref_parts`` only about objects of types it does not
    know itself.
    """

    def pid(self, node: Atom, id: int, serial: int, creation: int) -> object:  # noqa: A002 (the wire's name)
        """The pid object for these wire parts."""
        ...

    def ref(self, node: Atom, creation: int, words: tuple[int, ...]) -> object:
        """The reference object for these wire parts."""
        ...

    def pid_parts(self, value: object) -> tuple[Atom, int, int, int] | None:
        """``(node, id, serial, creation)`` when ``value`` is a pid, else ``None``."""
        ...

    def ref_parts(self, value: object) -> tuple[Atom, int, tuple[int, ...]] | None:
        """``(node, creation, words)`` when ``value`` is a reference, else ``None``."""
        ...


@final
class PlainIdentities:
    """The default :class:`Identities`: :class:`ExternalPid` and :class:`ExternalRef`."""

    __slots__ = ()

    def pid(self, node: Atom, id: int, serial: int, creation: int) -> ExternalPid:  # noqa: A002
        """An :class:`ExternalPid`."""
        return ExternalPid(node, id, serial, creation)

    def ref(self, node: Atom, creation: int, words: tuple[int, ...]) -> ExternalRef:
        """An :class:`ExternalRef`."""
        return ExternalRef(node, creation, words)

    def pid_parts(self, value: object) -> tuple[Atom, int, int, int] | None:
        """The parts of an :class:`ExternalPid`, else ``None``."""
        if isinstance(value, ExternalPid):
            return (value.node, value.id, value.serial, value.creation)
        return None

    def ref_parts(self, value: object) -> tuple[Atom, int, tuple[int, ...]] | None:
        """The parts of an :class:`ExternalRef`, else ``None``."""
        if isinstance(value, ExternalRef):
            return (value.node, value.creation, value.words)
        return None


# Classes of Erlang's term order, the first element of every key.
_NUMBER, _ATOM, _REF, _FUN, _PORT, _PID, _TUPLE, _MAP, _NIL, _LIST, _BITS, _OTHER = range(12)
_NIL_KEY: tuple[object, ...] = (_NIL,)
_BIN_TYPES = (bytes, bytearray, memoryview)


def _ref_key(node: str, creation: int, words: tuple[int, ...]) -> tuple[object, ...]:
    # erts compares the words as one number, most significant (last) word first.
    value = 0
    for word in reversed(words):
        value = (value << 32) | word
    return (_REF, node, creation, value, len(words))


def term_key(term: object, identities: Identities | None = None) -> tuple[object, ...]:
    """The sort key of ``term`` in Erlang's exact term order (the order of map keys).

    Keys compare like the terms do in erts: number < atom < reference < fun < port < pid <
    tuple < map < nil < list < bit string; every integer before every float, ``-0.0``
    before ``0.0``; pids by serial, id, node, creation; ports by node, creation, id;
    references by node, creation, then their words as one number. Equal keys mean ``=:=``
    terms, so a ``str`` and its UTF-8 ``bytes`` have the same key. Funs sort after
    references and before ports, local funs before exports, but their order among
    themselves is only deterministic, not erts'.

    Args:
        term: any term of the model (:mod:`server.dist.terms`).
        identities: asked about objects of other types (runtime pids and references);
            objects it does not know get a key of their own, after every term.

    Returns:
        A tuple; compare two with ``<`` and ``==``.

    Raises:
        TypeError: an object of an unknown type is not hashable.
    """
    kind = type(term)
    if kind is Atom:
        return (_ATOM, term)
    if kind is int:
        return (_NUMBER, 0, term)
    if kind is bool:
        return (_ATOM, "true" if term else "false")
    if term is None:
        return (_ATOM, "undefined")
    if kind is float:
        assert isinstance(term, float)
        return (_NUMBER, 1, term, 0 if math.copysign(1.0, term) < 0 and term == 0 else 1)
    if kind is str:
        assert isinstance(term, str)
        raw = term.encode("utf-8")
        return (_BITS, raw, len(raw) * 8)
    if kind is tuple:
        assert isinstance(term, tuple)
        return (_TUPLE, len(term), *(term_key(item, identities) for item in term))
    if kind is list:
        assert isinstance(term, list)
        if not term:
            return _NIL_KEY
        items = [(1, term_key(item, identities)) for item in term]
        items.append((0, _NIL_KEY))
        return (_LIST, tuple(items))
    if isinstance(term, _BIN_TYPES):
        raw = bytes(term)
        return (_BITS, raw, len(raw) * 8)
    if kind is dict or kind is Map:
        assert isinstance(term, dict | Map)
        keyed = sorted((term_key(k, identities), term_key(v, identities)) for k, v in term.items())
        return (_MAP, len(keyed), tuple(k for k, _ in keyed), tuple(v for _, v in keyed))
    if kind is ImproperList:
        assert isinstance(term, ImproperList)
        tail = term_key(term.tail, identities)
        # At a position where one list has an element and the other its tail, the tail
        # sorts first unless it is a bit string (the only class above lists).
        marker = 2 if tail[0] == _BITS else 0
        cells = [(1, term_key(item, identities)) for item in term.items]
        cells.append((marker, tail))
        return (_LIST, tuple(cells))
    if kind is BitString:
        assert isinstance(term, BitString)
        return (_BITS, term.data, term.bit_size)
    if kind is ExternalPid:
        assert isinstance(term, ExternalPid)
        return (_PID, term.serial, term.id, str(term.node), term.creation)
    if kind is ExternalRef:
        assert isinstance(term, ExternalRef)
        return _ref_key(str(term.node), term.creation, term.words)
    if kind is Port:
        assert isinstance(term, Port)
        return (_PORT, str(term.node), term.creation, term.id)
    if kind is Export:
        assert isinstance(term, Export)
        return (_FUN, 1, str(term.module), str(term.function), term.arity)
    if kind is Fun:
        assert isinstance(term, Fun)
        return (
            _FUN,
            0,
            str(term.module),
            term.index,
            term.uniq,
            term.old_index,
            term.old_uniq,
            term_key(term.pid, identities),
            term_key(term.free_vars, identities),
        )
    return _other_key(term, identities)


def _other_key(term: object, identities: Identities | None) -> tuple[object, ...]:
    if identities is not None:
        pid = identities.pid_parts(term)
        if pid is not None:
            node, id_, serial, creation = pid
            return (_PID, serial, id_, str(node), creation)
        ref = identities.ref_parts(term)
        if ref is not None:
            return _ref_key(str(ref[0]), ref[1], ref[2])
    # Subclasses of the plain types (enums, named tuples) sort as what they encode as.
    if isinstance(term, int):
        return term_key(bool(term) if isinstance(term, bool) else int(term), identities)
    if isinstance(term, float):
        return term_key(float(term), identities)
    if isinstance(term, str):
        return term_key(str(term), identities)
    if isinstance(term, tuple):
        return term_key(tuple(term), identities)
    if isinstance(term, list):
        return term_key(list(term), identities)
    if isinstance(term, dict):
        return term_key(dict(term), identities)
    hash(term)
    return (_OTHER, type(term).__qualname__, term)


@final
class Map(Mapping[object, object]):
    """An Erlang map whose keys a ``dict`` cannot hold: keys compare by ``=:=``.

    ``Map([(1, "a"), (1.0, "b")])`` has two keys, as in Erlang. Lookup, ``in`` and ``get``
    use Erlang's exact equality (same type and value; a ``str`` and its UTF-8 ``bytes`` are
    the same binary). ``==`` is Erlang's: the same keys (exactly) with equal values; it also
    compares with a ``dict``. Pairs keep the order they were given in.

    Raises:
        ValueError: two keys are the same Erlang term.
        TypeError: a key is an object of an unknown, unhashable type.
    """

    __slots__ = ("_index", "_pairs")

    def __init__(
        self, pairs: Iterable[tuple[object, object]] | Mapping[object, object] = ()
    ) -> None:
        items = tuple(pairs.items() if isinstance(pairs, Mapping) else pairs)
        index: dict[tuple[object, ...], int] = {}
        for position, (key, _) in enumerate(items):
            exact = term_key(key)
            if exact in index:
                raise ValueError(f"two keys of the map are the same Erlang term: {key!r}")
            index[exact] = position
        self._pairs = tuple((k, v) for k, v in items)
        self._index = index

    def __getitem__(self, key: object) -> object:
        position = self._index.get(term_key(key))
        if position is None:
            raise KeyError(key)
        return self._pairs[position][1]

    def __contains__(self, key: object) -> bool:
        try:
            return term_key(key) in self._index
        except TypeError:
            return False

    def __iter__(self) -> Iterator[object]:
        return (k for k, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def pairs(self) -> tuple[tuple[object, object], ...]:
        """The ``(key, value)`` pairs, in order."""
        return self._pairs

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            try:
                other = Map(other)
            except ValueError:
                return False
        if not isinstance(other, Map):
            return NotImplemented
        if len(self._pairs) != len(other._pairs) or self._index.keys() != other._index.keys():
            return False
        return all(
            value == other._pairs[other._index[exact]][1]
            for exact, (_, value) in zip(self._index, self._pairs, strict=True)
        )

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(frozenset(self._index))

    def __repr__(self) -> str:
        return f"Map({list(self._pairs)!r})"
