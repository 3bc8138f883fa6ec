"""Erlang's external term format: bytes <-> the terms of :mod:`server.dist.terms`.

A pure core (no I/O, no anyio): the distribution layer frames the bytes, this module turns
them into terms and back. How it works:

1. **Decoding is iterative.** One loop reads tags; containers (tuples, lists, maps, the
   free variables of a fun) push a frame that collects their elements, so a hostile
   1,000,000-deep list costs a ``TermDecodeError`` at ``Limits.max_depth``, never the
   Python stack.
2. **Every length is checked before anything is allocated**: a header claiming ``n``
   elements needs at least ``n`` more bytes of input (each element is at least one byte),
   a binary needs its bytes. A 4 G-element list in a 10-byte input fails at once.
3. **Errors name what and where**: :class:`~server.errors.TermDecodeError` carries the
   offset of the tag being read (into the decompressed data for ``131, 80`` input).
4. **Encoding writes what erts writes** (``term_to_binary(T, [{minor_version, 2}])`` on
   OTP 25), so a term from erts re-encodes byte for byte: the shortest integer form,
   UTF-8 atoms, ``NEW_FLOAT_EXT``, ``STRING_EXT`` for lists of bytes, and maps of up to 32
   keys sorted in term order. Larger maps are written in their own order (erts uses an
   internal hash order nobody else can reproduce; a map decoded from erts keeps it).
5. **Ports**: ``port_tag="auto"`` writes ``NEW_PORT_EXT`` for ids below 2**28 and
   ``V4_PORT_EXT`` above (OTP 25); ``"v4"`` always writes ``V4_PORT_EXT`` (OTP 28).

The module is about 1,000 lines, past the house's ~600: the decoder and the encoder are the
two halves of one table of tags, and the layout of ``server/dist`` keeps the codec in one
module. If it grows, split it into ``_decode.py`` and ``_encode.py`` behind this one.

Encoding: types are dispatched by exact type first (the common ones cost one dict lookup);
then ``identities.pid_parts``/``ref_parts``; then subclasses of the plain types (enums,
named tuples) as their base; then ``fallback``; else ``TypeError``.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from server.dist.terms import (
    Atom,
    BitString,
    Export,
    ExternalPid,
    ExternalRef,
    Fun,
    Identities,
    ImproperList,
    Map,
    PlainIdentities,
    Port,
    term_key,
)
from server.errors import TermDecodeError

__all__ = [
    "DEFAULT_LIMITS",
    "VERSION",
    "Limits",
    "atom_bytes",
    "decode",
    "decode_at",
    "encode",
    "encode_into",
]

#: The version byte that opens an external term.
VERSION: Final = 131
_COMPRESSED = 80

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_U32X2 = struct.Struct(">II")
_U32X3 = struct.Struct(">III")
_U64U32 = struct.Struct(">QI")
_U32U8 = struct.Struct(">IB")
_U32X2U8 = struct.Struct(">IIB")
_FUN_HEAD = struct.Struct(">IB16sII")
_TAG_I32 = struct.Struct(">Bi")
_TAG_U32 = struct.Struct(">BI")
_TAG_U16 = struct.Struct(">BH")
_TAG_F64 = struct.Struct(">Bd")
_TAG_U32U8 = struct.Struct(">BIB")
_TAG_U16U8 = struct.Struct(">BHB")
_WORDS = [struct.Struct(f">{n}I") for n in range(6)]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one decode accepts; input beyond them is a ``TermDecodeError``.

    Attributes:
        max_bytes: input size, and the declared size of compressed input.
        max_depth: nesting of tuples, lists, maps and closures.
        max_atoms: atoms (including node names and cached atoms) in one decode.
        max_big_bytes: bytes of one bignum's digits (65,536 bits by default).
    """

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 1000
    max_atoms: int = 1_000_000
    max_big_bytes: int = 8192


#: The limits ``decode`` uses unless told otherwise.
DEFAULT_LIMITS: Final = Limits()
_PLAIN: Final = PlainIdentities()

# Decoded atoms, interned by their bytes; bounded so a peer cannot grow it forever.
_ATOM_LIMIT = 1 << 16
_UTF8_ATOMS: dict[bytes, Atom] = {}
_LATIN1_ATOMS: dict[bytes, Atom] = {}
_SPECIAL: dict[str, object] = {"true": True, "false": False, "undefined": None}
# SMALL_ATOM_UTF8_EXT bodies -> the term they decode to (an Atom, True, False or None).
_TERM_ATOMS: dict[bytes, object] = {}
_MISSING: Final = object()


class _Truncated(Exception):
    """Raised inside the decoder; becomes a ``TermDecodeError`` at the tag's offset."""


class _Decoder:
    __slots__ = ("atom_cache", "atoms", "data", "end", "ids", "limits")

    def __init__(
        self,
        data: bytes,
        atom_cache: Sequence[Atom] | None,
        ids: Identities,
        limits: Limits,
    ) -> None:
        self.data = data
        self.end = len(data)
        self.atom_cache = atom_cache
        self.ids = ids
        self.limits = limits
        self.atoms = 0

    def need(self, pos: int, n: int, what: str, at: int) -> None:
        """Check that ``n`` bytes from ``pos`` are there, else blame the tag at ``at``."""
        if n > self.end - pos:
            raise TermDecodeError(
                f"{what} of {n} bytes does not fit in the {max(self.end - pos, 0)} left", at
            )

    # -- atoms ------------------------------------------------------------------------

    def atom(self, off: int) -> tuple[Atom, int]:
        """An atom (a node name, a module): any of the atom tags, or a cache reference."""
        data = self.data
        tag = data[off]
        if tag == 119 or tag == 115:
            n = data[off + 1]
            start = off + 2
        elif tag == 118 or tag == 100:
            n = _U16.unpack_from(data, off + 1)[0]
            start = off + 3
        elif tag == 82:
            return self.cached_atom(off), off + 2
        else:
            raise TermDecodeError(f"expected an atom, got tag {tag}", off)
        self.count_atom(off)
        stop = start + n
        if stop > self.end:
            raise TermDecodeError(f"atom of {n} bytes does not fit in the input", off)
        raw = data[start:stop]
        utf8 = tag == 119 or tag == 118
        table = _UTF8_ATOMS if utf8 else _LATIN1_ATOMS
        atom = table.get(raw)
        if atom is None:
            try:
                atom = Atom(raw.decode("utf-8" if utf8 else "latin-1"))
            except UnicodeDecodeError:
                raise TermDecodeError("atom is not valid UTF-8", off) from None
            except ValueError as error:
                raise TermDecodeError(str(error), off) from None
            if len(table) < _ATOM_LIMIT:
                table[raw] = atom
        return atom, stop

    def cached_atom(self, off: int) -> Atom:
        index = self.data[off + 1]
        cache = self.atom_cache
        if cache is None or index >= len(cache):
            raise TermDecodeError(f"atom cache reference {index} without such a cache entry", off)
        self.count_atom(off)
        return cache[index]

    def count_atom(self, off: int) -> None:
        self.atoms += 1
        if self.atoms > self.limits.max_atoms:
            raise TermDecodeError(f"more than {self.limits.max_atoms} atoms", off)

    def term_atom(self, data: bytes, off: int) -> tuple[object, int]:
        atom, stop = self.atom(off - 1)
        value = _SPECIAL.get(atom, atom)
        if data[off - 1] == 119 and len(_TERM_ATOMS) < _ATOM_LIMIT:
            _TERM_ATOMS[data[off + 1 : stop]] = value
        return value, stop

    # -- fixed-size parts of pids, funs -----------------------------------------------

    def pid(self, off: int) -> tuple[object, int]:
        tag = self.data[off]
        if tag == 88:
            node, off = self.atom(off + 1)
            id_, serial, creation = _U32X3.unpack_from(self.data, off)
            return self.ids.pid(node, id_, serial, creation), off + 12
        if tag == 103:
            node, off = self.atom(off + 1)
            id_, serial, creation = _U32X2U8.unpack_from(self.data, off)
            return self.ids.pid(node, id_, serial, creation), off + 9
        raise TermDecodeError(f"expected a pid, got tag {tag}", off)

    def small_int(self, off: int) -> tuple[int, int]:
        tag = self.data[off]
        if tag == 97:
            return self.data[off + 1], off + 2
        if tag == 98:
            return _I32.unpack_from(self.data, off + 1)[0], off + 5
        if tag == 110:
            return _small_big(self, self.data, off + 1)
        raise TermDecodeError(f"expected an integer, got tag {tag}", off)

    # -- the loop ---------------------------------------------------------------------

    def term(self, off: int) -> tuple[object, int]:
        data = self.data
        end = self.end
        scalars = _SCALARS
        max_depth = self.limits.max_depth
        # A frame: [kind, elements still to come, elements so far, extra].
        stack: list[list[object]] = []
        start = off
        term_atoms = _TERM_ATOMS
        max_atoms = self.limits.max_atoms
        try:
            while True:
                start = off
                tag = data[off]
                if tag == 119:
                    # The common case inline: a small UTF-8 atom seen before.
                    stop = off + 2 + data[off + 1]
                    value = term_atoms.get(data[off + 2 : stop], _MISSING)
                    if value is _MISSING or stop > end:
                        value, off = self.term_atom(data, off + 1)
                    else:
                        off = stop
                        self.atoms += 1
                        if self.atoms > max_atoms:
                            raise TermDecodeError(f"more than {max_atoms} atoms", start)
                elif (reader := scalars.get(tag)) is not None:
                    value, off = reader(self, data, off + 1)
                else:
                    extra: object = start
                    if len(stack) >= max_depth:
                        raise TermDecodeError(f"terms nested deeper than {max_depth}", off)
                    if tag == 104:
                        n = data[off + 1]
                        off += 2
                        kind = _TUPLE
                    elif tag == 108:
                        n = _U32.unpack_from(data, off + 1)[0] + 1
                        off += 5
                        kind = _LIST
                    elif tag == 116:
                        n = _U32.unpack_from(data, off + 1)[0] * 2
                        off += 5
                        kind = _MAP
                    elif tag == 105:
                        n = _U32.unpack_from(data, off + 1)[0]
                        off += 5
                        kind = _TUPLE
                    elif tag == 112:
                        n, off, extra = self.fun_head(off)
                        kind = _FUN
                    elif tag == 121:
                        raise TermDecodeError(
                            "LOCAL_EXT (term_to_binary(T, [local])) is only valid on the node "
                            "that wrote it",
                            off,
                        )
                    else:
                        raise TermDecodeError(f"unknown tag {tag}", off)
                    if n > end - off:
                        raise TermDecodeError(
                            f"header claims {n} elements but only {end - off} bytes are left",
                            start,
                        )
                    if n:
                        stack.append([kind, n, [], extra])
                        continue
                    value = _build(self, kind, [], extra, off)
                # Fold the finished value into the containers waiting for it.
                while stack:
                    frame = stack[-1]
                    items = frame[2]
                    items.append(value)  # type: ignore[attr-defined]
                    left = frame[1] - 1  # type: ignore[operator]
                    if left:
                        frame[1] = left
                        break
                    stack.pop()
                    value = _build(self, frame[0], items, frame[3], off)  # type: ignore[arg-type]
                else:
                    return value, off
        except (IndexError, struct.error):
            raise TermDecodeError("input ends inside a term", start) from None

    def fun_head(self, off: int) -> tuple[int, int, object]:
        size, arity, uniq, index, num_free = _FUN_HEAD.unpack_from(self.data, off + 1)
        self.need(off + 1, size, "NEW_FUN_EXT", off)
        stop = off + 1 + size
        module, pos = self.atom(off + 30)
        old_index, pos = self.small_int(pos)
        old_uniq, pos = self.small_int(pos)
        pid, pos = self.pid(pos)
        head = (arity, uniq, index, module, old_index, old_uniq, pid, stop, off)
        return num_free, pos, head


_TUPLE, _LIST, _MAP, _FUN = "tuple", "list", "map", "fun"


def _build(dec: _Decoder, kind: object, items: list[object], extra: object, off: int) -> object:
    if kind is _TUPLE:
        return tuple(items)
    if kind is _LIST:
        tail = items.pop()
        if type(tail) is list:
            return items + tail if tail else items
        if not items:
            return tail
        if type(tail) is ImproperList:
            return ImproperList((*items, *tail.items), tail.tail)
        return ImproperList(tuple(items), tail)
    if kind is _MAP:
        keys = items[0::2]
        values = items[1::2]
        try:
            as_dict = dict(zip(keys, values, strict=True))
        except TypeError:
            pass
        else:
            if len(as_dict) == len(keys):
                return as_dict
        try:
            return Map(zip(keys, values, strict=True))
        except (ValueError, TypeError) as error:
            raise TermDecodeError(str(error), extra) from None  # type: ignore[arg-type]
    assert isinstance(extra, tuple)
    arity, uniq, index, module, old_index, old_uniq, pid, stop, start = extra
    if off != stop:
        raise TermDecodeError(f"NEW_FUN_EXT size says it ends at {stop}, it ends at {off}", start)
    return Fun(arity, uniq, index, module, old_index, old_uniq, pid, tuple(items))


# -- scalar readers: (decoder, data, offset after the tag) -> (value, new offset) ---------


def _small_int(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    return data[off], off + 1


def _integer(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    return _I32.unpack_from(data, off)[0], off + 4


def _digits(dec: _Decoder, data: bytes, off: int, n: int, sign: int, at: int) -> tuple[int, int]:
    if n > dec.limits.max_big_bytes:
        raise TermDecodeError(
            f"bignum of {n} bytes exceeds the limit of {dec.limits.max_big_bytes}", at
        )
    if sign > 1:
        raise TermDecodeError(f"bignum sign byte is {sign}, not 0 or 1", at)
    dec.need(off, n, "bignum", at)
    value = int.from_bytes(data[off : off + n], "little")
    return (-value if sign else value), off + n


def _small_big(dec: _Decoder, data: bytes, off: int) -> tuple[int, int]:
    return _digits(dec, data, off + 2, data[off], data[off + 1], off - 1)


def _large_big(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    n, sign = _U32U8.unpack_from(data, off)
    return _digits(dec, data, off + 5, n, sign, off - 1)


def _new_float(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    value = _F64.unpack_from(data, off)[0]
    if not math.isfinite(value):
        raise TermDecodeError(f"float {value} does not exist in Erlang", off - 1)
    return value, off + 8


def _old_float(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    dec.need(off, 31, "FLOAT_EXT", off - 1)
    text = data[off : off + 31].split(b"\0", 1)[0]
    try:
        value = float(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise TermDecodeError(f"FLOAT_EXT text {text!r} is not a float", off - 1) from None
    if not math.isfinite(value):
        raise TermDecodeError(f"float {value} does not exist in Erlang", off - 1)
    return value, off + 31


def _nil(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    return [], off


def _string(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    n = _U16.unpack_from(data, off)[0]
    dec.need(off + 2, n, "STRING_EXT", off - 1)
    return list(data[off + 2 : off + 2 + n]), off + 2 + n


def _binary(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    n = _U32.unpack_from(data, off)[0]
    start = off + 4
    stop = start + n
    if stop > dec.end:
        dec.need(start, n, "binary", off - 1)
    raw = data[start:stop]
    try:
        return raw.decode("utf-8"), stop
    except UnicodeDecodeError:
        return raw, stop


def _bit_binary(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    n, bits = _U32U8.unpack_from(data, off)
    start = off + 5
    dec.need(start, n, "bit string", off - 1)
    raw = data[start : start + n]
    if not raw or not 1 <= bits <= 8:
        raise TermDecodeError(f"bit string of {n} bytes with {bits} bits in its last", off - 1)
    if bits == 8:
        try:
            return raw.decode("utf-8"), start + n
        except UnicodeDecodeError:
            return raw, start + n
    return BitString(raw, bits), start + n


def _atom_cache_ref(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    atom = dec.cached_atom(off - 1)
    return _SPECIAL.get(atom, atom), off + 1


def _new_pid(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    return dec.pid(off - 1)


def _newer_ref(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    n = _U16.unpack_from(data, off)[0]
    node, pos = dec.atom(off + 2)
    creation = _U32.unpack_from(data, pos)[0]
    return _ref(dec, data, off, node, creation, n, pos + 4)


def _new_ref(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    n = _U16.unpack_from(data, off)[0]
    node, pos = dec.atom(off + 2)
    creation = data[pos]
    return _ref(dec, data, off, node, creation, n, pos + 1)


def _ref(
    dec: _Decoder, data: bytes, off: int, node: Atom, creation: int, n: int, pos: int
) -> tuple[object, int]:
    dec.need(pos, 4 * n, "reference words", off - 1)
    shape = _WORDS[n] if n < len(_WORDS) else struct.Struct(f">{n}I")
    words = shape.unpack_from(data, pos)
    return dec.ids.ref(node, creation, words), pos + 4 * n


def _old_ref(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    node, pos = dec.atom(off)
    id_, creation = _U32U8.unpack_from(data, pos)
    return dec.ids.ref(node, creation, (id_,)), pos + 5


def _new_port(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    node, pos = dec.atom(off)
    id_, creation = _U32X2.unpack_from(data, pos)
    return Port(node, id_, creation), pos + 8


def _v4_port(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    node, pos = dec.atom(off)
    id_, creation = _U64U32.unpack_from(data, pos)
    return Port(node, id_, creation), pos + 12


def _old_port(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    node, pos = dec.atom(off)
    id_, creation = _U32U8.unpack_from(data, pos)
    return Port(node, id_, creation), pos + 5


def _export(dec: _Decoder, data: bytes, off: int) -> tuple[object, int]:
    module, pos = dec.atom(off)
    function, pos = dec.atom(pos)
    if data[pos] != 97:
        raise TermDecodeError(f"EXPORT_EXT arity has tag {data[pos]}, not 97", pos)
    return Export(module, function, data[pos + 1]), pos + 2


_Reader = Callable[[_Decoder, bytes, int], tuple[object, int]]
_SCALARS: dict[int, _Reader] = {
    97: _small_int,
    98: _integer,
    110: _small_big,
    111: _large_big,
    70: _new_float,
    99: _old_float,
    119: _Decoder.term_atom,
    118: _Decoder.term_atom,
    100: _Decoder.term_atom,
    115: _Decoder.term_atom,
    82: _atom_cache_ref,
    106: _nil,
    107: _string,
    109: _binary,
    77: _bit_binary,
    88: _new_pid,
    103: _new_pid,
    90: _newer_ref,
    114: _new_ref,
    101: _old_ref,
    89: _new_port,
    120: _v4_port,
    102: _old_port,
    113: _export,
}


def decode_at(
    data: bytes | bytearray | memoryview,
    offset: int,
    *,
    atom_cache: Sequence[Atom] | None = None,
    identities: Identities | None = None,
    limits: Limits = DEFAULT_LIMITS,
    versioned: bool,
) -> tuple[object, int]:
    """Decode one term starting at ``offset``; the bytes after it are left alone.

    Args:
        data: the input (a frame holding several terms, say).
        offset: where the term starts.
        atom_cache: the atoms ``ATOM_CACHE_REF`` (tag 82) indexes, from the distribution
            header of the frame.
        identities: makes pids and references (default: ``ExternalPid``/``ExternalRef``).
        limits: bounds on the input.
        versioned: the term opens with the version byte 131 (and may then be compressed,
            ``131, 80``); ``False`` for the terms of a distribution message, which have none.

    Returns:
        The term and the offset just after it.

    Raises:
        TermDecodeError: the bytes are not a valid term, or exceed ``limits``.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) - offset > limits.max_bytes:
        raise TermDecodeError(
            f"input of {len(data) - offset} bytes exceeds the limit of {limits.max_bytes}", offset
        )
    if not 0 <= offset < len(data):
        raise TermDecodeError("no term: the input ends here", offset)
    decoder = _Decoder(data, atom_cache, identities or _PLAIN, limits)
    if versioned:
        if data[offset] != VERSION:
            raise TermDecodeError(f"version byte is {data[offset]}, not {VERSION}", offset)
        offset += 1
        if offset < len(data) and data[offset] == _COMPRESSED:
            return _decompress(decoder, offset)
    if offset >= len(data):
        raise TermDecodeError("no term after the version byte", offset)
    return decoder.term(offset)


def _decompress(decoder: _Decoder, offset: int) -> tuple[object, int]:
    data = decoder.data
    limits = decoder.limits
    if offset + 5 > len(data):
        raise TermDecodeError("compressed term without its size", offset)
    size = _U32.unpack_from(data, offset + 1)[0]
    if size > limits.max_bytes:
        raise TermDecodeError(
            f"compressed term of {size} bytes exceeds the limit of {limits.max_bytes}", offset
        )
    inflater = zlib.decompressobj()
    try:
        # max_length bounds the output: a bomb stops after size + 1 bytes.
        raw = inflater.decompress(memoryview(data)[offset + 5 :], size + 1)
        if len(raw) == size and not inflater.eof:
            raw += inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as error:
        raise TermDecodeError(f"compressed term is not valid zlib data ({error})", offset) from None
    if len(raw) != size:
        raise TermDecodeError(
            f"compressed term declares {size} bytes but "
            + ("holds more" if len(raw) > size else f"inflates to {len(raw)}"),
            offset,
        )
    if not inflater.eof:
        raise TermDecodeError("compressed term is truncated", offset)
    inner = _Decoder(raw, decoder.atom_cache, decoder.ids, limits)
    try:
        term, stop = inner.term(0)
    except TermDecodeError as error:
        raise TermDecodeError(f"{error.reason} (in the decompressed data)", error.offset) from None
    if stop != size:
        raise TermDecodeError(
            f"{size - stop} bytes after the term (in the decompressed data)", stop
        )
    return term, len(data) - len(inflater.unused_data)


def decode(
    data: bytes | bytearray | memoryview,
    *,
    identities: Identities | None = None,
    atom_cache: Sequence[Atom] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> object:
    """Decode one whole external term: ``131``, then the term (or ``80`` and zlib data).

    Args:
        data: exactly one term; bytes after it are an error.
        identities: makes pids and references (default: ``ExternalPid``/``ExternalRef``).
        atom_cache: the atoms ``ATOM_CACHE_REF`` indexes.
        limits: bounds on the input.

    Returns:
        The term, in the model of :mod:`server.dist.terms`.

    Raises:
        TermDecodeError: the bytes are not exactly one valid term, or exceed ``limits``.
    """
    term, stop = decode_at(
        data, 0, atom_cache=atom_cache, identities=identities, limits=limits, versioned=True
    )
    if stop != len(data):
        raise TermDecodeError(f"{len(data) - stop} bytes after the term", stop)
    return term


# -- encoding --------------------------------------------------------------------------

_Writer = Callable[["_Encoder", bytearray, object], None]
_ATOM_BYTES: dict[str, bytes] = {}
_SMALL_MAP = 32
# Keys of these types that are distinct in a dict are distinct Erlang terms too, as long as
# atoms do not meet True/False/None (``Atom("true")`` and ``True`` are the same atom).
_SAFE_KEY_TYPES = frozenset({int, float, bool, type(None), Atom, str})
_ATOM_LIKE = frozenset({bool, type(None)})


def atom_bytes(text: str) -> bytes:
    """An atom's external form (``SMALL_ATOM_UTF8_EXT``/``ATOM_UTF8_EXT``), cached.

    Raises:
        ValueError: more than 255 characters.
    """
    cached = _ATOM_BYTES.get(text)
    if cached is not None:
        return cached
    if len(text) > 255:
        raise ValueError(f"an atom holds at most 255 characters, got {len(text)}")
    raw = text.encode("utf-8")
    n = len(raw)
    encoded = (bytes((119, n)) if n < 256 else _TAG_U16.pack(118, n)) + raw
    if len(_ATOM_BYTES) < _ATOM_LIMIT:
        _ATOM_BYTES[text] = encoded
    return encoded


_TRUE = atom_bytes("true")
_FALSE = atom_bytes("false")
_UNDEFINED = atom_bytes("undefined")


class _Encoder:
    __slots__ = ("fallback", "ids", "v4_ports")

    def __init__(
        self,
        ids: Identities | None,
        fallback: Callable[[object], object] | None,
        v4_ports: bool,
    ) -> None:
        self.ids = ids
        self.fallback = fallback
        self.v4_ports = v4_ports

    def write(self, out: bytearray, term: object) -> None:
        writer = _WRITERS.get(type(term))
        if writer is not None:
            writer(self, out, term)
        else:
            self.write_other(out, term)

    def write_other(self, out: bytearray, term: object) -> None:
        ids = self.ids
        if ids is not None:
            pid = ids.pid_parts(term)
            if pid is not None:
                _write_pid_parts(self, out, *pid)
                return
            ref = ids.ref_parts(term)
            if ref is not None:
                _write_ref_parts(self, out, *ref)
                return
        for base, writer in _BASE_WRITERS:
            if isinstance(term, base):
                writer(self, out, term)
                return
        name = type(term).__qualname__
        if self.fallback is None:
            raise TypeError(f"cannot encode {name} as an Erlang term: no fallback converts it")
        try:
            converted = self.fallback(term)
        except TypeError as error:
            raise TypeError(f"cannot encode {name} as an Erlang term: {error}") from error
        if type(converted) is type(term):
            raise TypeError(f"cannot encode {name} as an Erlang term: the fallback returned one")
        self.write(out, converted)


def _write_atom(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, str)
    out += atom_bytes(term)


def _write_bool(enc: _Encoder, out: bytearray, term: object) -> None:
    out += _TRUE if term else _FALSE


def _write_none(enc: _Encoder, out: bytearray, term: object) -> None:
    out += _UNDEFINED


def _write_int(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, int)
    if 0 <= term <= 255:
        out.append(97)
        out.append(term)
    elif -0x80000000 <= term <= 0x7FFFFFFF:
        out += _TAG_I32.pack(98, term)
    else:
        magnitude = -term if term < 0 else term
        n = (magnitude.bit_length() + 7) >> 3
        if n < 256:
            out += bytes((110, n, term < 0))
        else:
            out += _TAG_U32U8.pack(111, n, term < 0)
        out += magnitude.to_bytes(n, "little")


def _write_float(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, float)
    if not math.isfinite(term):
        raise ValueError(f"cannot encode the float {term!r}: Erlang has no NaN or infinity")
    out += _TAG_F64.pack(70, term)


def _write_str(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, str)
    raw = term.encode("utf-8")
    out += _TAG_U32.pack(109, len(raw))
    out += raw


def _write_bytes(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, bytes | bytearray | memoryview)
    view = memoryview(term)
    out += _TAG_U32.pack(109, view.nbytes)
    out += view.cast("B") if view.format != "B" else view


def _write_tuple(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, tuple)
    n = len(term)
    if n < 256:
        out.append(104)
        out.append(n)
    else:
        out += _TAG_U32.pack(105, n)
    write = enc.write
    for item in term:
        write(out, item)


def _write_list(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, list)
    n = len(term)
    if not n:
        out.append(106)
        return
    if n <= 0xFFFF and set(map(type, term)) == {int}:
        try:
            raw = bytes(term)
        except ValueError:
            pass
        else:
            out += _TAG_U16.pack(107, n)
            out += raw
            return
    out += _TAG_U32.pack(108, n)
    write = enc.write
    for item in term:
        write(out, item)
    out.append(106)


def _write_improper(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, ImproperList)
    out += _TAG_U32.pack(108, len(term.items))
    write = enc.write
    for item in term.items:
        write(out, item)
    write(out, term.tail)


def _write_pairs(
    enc: _Encoder, out: bytearray, pairs: Sequence[tuple[object, object]], checked: bool
) -> None:
    n = len(pairs)
    out += _TAG_U32.pack(116, n)
    if n <= _SMALL_MAP:
        if n > 1:
            if all(type(k) is Atom for k, _ in pairs):
                pairs = sorted(pairs, key=_first_str)
            else:
                keyed = sorted(
                    ((term_key(k, enc.ids), i) for i, (k, _) in enumerate(pairs)),
                    key=_first,
                )
                if not checked:
                    _check_distinct([k for k, _ in keyed], pairs)
                pairs = [pairs[i] for _, i in keyed]
    elif not checked and not _distinct_by_type({type(k) for k, _ in pairs}):
        _check_distinct([term_key(k, enc.ids) for k, _ in pairs], pairs)
    write = enc.write
    for key, value in pairs:
        write(out, key)
        write(out, value)


def _distinct_by_type(types: set[type]) -> bool:
    return types <= _SAFE_KEY_TYPES and not (Atom in types and types & _ATOM_LIKE)


def _first(item: tuple[tuple[object, ...], int]) -> tuple[object, ...]:
    return item[0]


def _first_str(item: tuple[object, object]) -> str:
    return item[0]  # type: ignore[return-value]


def _check_distinct(keys: list[tuple[object, ...]], pairs: Sequence[tuple[object, object]]) -> None:
    if len(set(keys)) != len(keys):
        raise ValueError(
            "cannot encode the map: two keys are the same Erlang term "
            "(a str and the bytes of its UTF-8, say): " + repr([k for k, _ in pairs])
        )


def _write_dict(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, dict)
    _write_pairs(enc, out, list(term.items()), checked=False)


def _write_map(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, Map)
    _write_pairs(enc, out, term.pairs(), checked=enc.ids is None)


def _write_bit_string(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, BitString)
    if term.bits == 8:
        _write_bytes(enc, out, term.data)
        return
    out += _TAG_U32U8.pack(77, len(term.data), term.bits)
    out += term.data


def _write_pid_parts(
    enc: _Encoder, out: bytearray, node: str, id_: int, serial: int, creation: int
) -> None:
    out.append(88)
    out += atom_bytes(node)
    out += _U32X3.pack(id_, serial, creation)


def _write_pid(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, ExternalPid)
    _write_pid_parts(enc, out, term.node, term.id, term.serial, term.creation)


def _write_ref_parts(
    enc: _Encoder, out: bytearray, node: str, creation: int, words: tuple[int, ...]
) -> None:
    n = len(words)
    out += _TAG_U16.pack(90, n)
    out += atom_bytes(node)
    out += _U32.pack(creation)
    out += (_WORDS[n] if n < len(_WORDS) else struct.Struct(f">{n}I")).pack(*words)


def _write_ref(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, ExternalRef)
    _write_ref_parts(enc, out, term.node, term.creation, term.words)


def _write_port(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, Port)
    if term.id < (1 << 28) and not enc.v4_ports:
        out.append(89)
        out += atom_bytes(term.node)
        out += _U32X2.pack(term.id, term.creation)
    else:
        out.append(120)
        out += atom_bytes(term.node)
        out += _U64U32.pack(term.id, term.creation)


def _write_export(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, Export)
    out.append(113)
    out += atom_bytes(term.module)
    out += atom_bytes(term.function)
    out.append(97)
    out.append(term.arity)


def _write_fun(enc: _Encoder, out: bytearray, term: object) -> None:
    assert isinstance(term, Fun)
    out.append(112)
    start = len(out)
    out += _FUN_HEAD.pack(0, term.arity, term.uniq, term.index, len(term.free_vars))
    out += atom_bytes(term.module)
    _write_int(enc, out, term.old_index)
    _write_int(enc, out, term.old_uniq)
    enc.write(out, term.pid)
    write = enc.write
    for item in term.free_vars:
        write(out, item)
    out[start : start + 4] = _U32.pack(len(out) - start)


_WRITERS: dict[type, _Writer] = {
    Atom: _write_atom,
    int: _write_int,
    tuple: _write_tuple,
    str: _write_str,
    list: _write_list,
    bool: _write_bool,
    type(None): _write_none,
    float: _write_float,
    dict: _write_dict,
    bytes: _write_bytes,
    ImproperList: _write_improper,
    ExternalPid: _write_pid,
    ExternalRef: _write_ref,
    Map: _write_map,
    BitString: _write_bit_string,
    bytearray: _write_bytes,
    memoryview: _write_bytes,
    Port: _write_port,
    Export: _write_export,
    Fun: _write_fun,
}
# Subclasses of plain types (IntEnum, StrEnum, named tuples) encode as their base.
_BASE_WRITERS: tuple[tuple[type, _Writer], ...] = (
    (bool, _write_bool),
    (int, _write_int),
    (float, _write_float),
    (str, _write_str),
    (bytes, _write_bytes),
    (tuple, _write_tuple),
    (list, _write_list),
    (dict, _write_dict),
)


def encode_into(
    out: bytearray,
    term: object,
    *,
    identities: Identities | None = None,
    fallback: Callable[[object], object] | None = None,
    port_tag: Literal["auto", "v4"] = "auto",
) -> None:
    """Append ``term`` to ``out`` in the external format, without the version byte.

    On error ``out`` is left as it was.

    Args:
        out: the buffer to append to (a distribution frame, say).
        term: the term, in the model of :mod:`server.dist.terms`.
        identities: takes apart pids and references of types the codec does not know.
        fallback: converts any other object to a term (a record to a tuple, say); raising
            ``TypeError`` means it cannot.
        port_tag: ``"auto"``: ``NEW_PORT_EXT`` for ids below 2**28, else ``V4_PORT_EXT``
            (as OTP 25 writes); ``"v4"``: always ``V4_PORT_EXT`` (as OTP 28 writes).

    Raises:
        TypeError: an object no rule and no fallback can encode.
        ValueError: a value Erlang cannot hold (NaN, infinity, a map with two keys that are
            the same Erlang term, an atom over 255 characters, a term nested too deeply).
    """
    if port_tag not in ("auto", "v4"):
        raise ValueError(f"port_tag must be 'auto' or 'v4', got {port_tag!r}")
    start = len(out)
    try:
        _Encoder(identities, fallback, port_tag == "v4").write(out, term)
    except RecursionError:
        del out[start:]
        raise ValueError("cannot encode the term: it is nested too deeply") from None
    except Exception:
        del out[start:]
        raise


def encode(
    term: object,
    *,
    identities: Identities | None = None,
    fallback: Callable[[object], object] | None = None,
    port_tag: Literal["auto", "v4"] = "auto",
) -> bytes:
    """The external format of ``term``: the version byte 131, then the term.

    Args:
        term: the term, in the model of :mod:`server.dist.terms`.
        identities: takes apart pids and references of types the codec does not know.
        fallback: converts any other object to a term; raising ``TypeError`` means it cannot.
        port_tag: ``"auto"`` (OTP 25's choice of port tag) or ``"v4"`` (OTP 28's).

    Returns:
        What ``term_to_binary(T, [{minor_version, 2}])`` gives for the same term (with maps
        of more than 32 keys in the map's own order).

    Raises:
        TypeError: an object no rule and no fallback can encode.
        ValueError: a value Erlang cannot hold (see :func:`encode_into`).
    """
    out = bytearray((VERSION,))
    encode_into(out, term, identities=identities, fallback=fallback, port_tag=port_tag)
    return bytes(out)
