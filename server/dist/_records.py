"""How the kernel's and behaviours' messages, exit reasons and records look on the wire.

Only terms cross nodes (``server.dist.terms``). Our own protocol records travel in the
shapes OTP uses, so an Erlang process can call a Python gen_server and the other way round:

====================================  ===================================================
Python (this node)                    Erlang term on the wire
====================================  ===================================================
``CallMessage(From(pid, ref), req)``  ``{'$gen_call', {Pid, [alias | Ref]}, Req}``
                                      (``{Pid, Ref}`` to a peer without ALIAS)
``CastMessage(req)``                  ``{'$gen_cast', Req}``
``SystemMessage(From, request)``      ``{system, {Pid, Tag}, Req}``: ``suspend``, ``resume``,
                                      ``get_state``, ``get_status``, ``{terminate, R}``,
                                      ``{change_code, Module, OldVsn, Extra}``
``ExitMessage(pid, reason)``          ``{'EXIT', Pid, Reason}``
``DownMessage(ref, pid, reason)``     ``{'DOWN', Ref, process, Pid, Reason}``
``NodeDownMessage(node)``             ``{nodedown, Node}``
an exception (as an exit reason)      ``{'$exception', 'module.Class', <<"text">>}``,
                                      decoded as ``RemoteException``
a dataclass instance                  an Elixir-style struct: a map with
                                      ``'__struct__' => 'module.Class'`` and one key per
                                      field; decoded back into the class only when it is
                                      registered (``register_record``), else a ``dict``
====================================  ===================================================

Exit reasons are values that may be plain ``str`` in the kernel (``"normal"``,
``("shutdown", detail)``): a reason's ``str`` and the ``str`` first element of a reason
tuple travel as atoms, so Erlang sees ``normal`` and ``{shutdown, Detail}``.

Nothing is ever unpickled or imported on behalf of a peer: a struct becomes an instance only
of a class this node registered.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Final, final

from server.behaviours.gen_server import CallMessage, CastMessage
from server.behaviours.replies import Failed, Ok, Refused
from server.behaviours.system_messages import (
    ChangeCode,
    GetState,
    GetStatus,
    ProcessStatus,
    Resume,
    Suspend,
    SystemMessage,
    Terminate,
)
from server.dist.terms import Atom, ImproperList
from server.kernel import (
    DownMessage,
    ExitMessage,
    From,
    NodeDownMessage,
    Pid,
    Ref,
    RemoteTag,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "RemoteException",
    "reason_to_term",
    "register_record",
    "registered_records",
    "term_to_reason",
]

STRUCT_KEY: Final = Atom("__struct__")
EXCEPTION_TAG: Final = Atom("$exception")
GEN_CALL: Final = Atom("$gen_call")
GEN_CAST: Final = Atom("$gen_cast")
SYSTEM: Final = Atom("system")
EXIT_TAG: Final = Atom("EXIT")
DOWN_TAG: Final = Atom("DOWN")
PROCESS: Final = Atom("process")
NODEDOWN: Final = Atom("nodedown")
ALIAS: Final = Atom("alias")
ERROR: Final = Atom("error")
OK: Final = Atom("ok")

_records: dict[str, type[Any]] = {}


class RemoteException(Exception):
    """An exception that ended a process on another node (an exit reason).

    Attributes:
        type_name: the qualified name of its class there (``builtins.ValueError``).
        text: its ``str`` there.
    """

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name = type_name
        self.text = text
        super().__init__(type_name, text)

    def __str__(self) -> str:
        return f"{self.type_name}: {self.text}" if self.text else self.type_name

    def __repr__(self) -> str:
        return f"RemoteException({self.type_name!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemoteException)
            and other.type_name == self.type_name
            and other.text == self.text
        )

    def __hash__(self) -> int:
        return hash((self.type_name, self.text))


def register_record(cls: type[Any], *, name: str | None = None) -> type[Any]:
    """Let instances of the dataclass ``cls`` come back as ``cls`` from another node.

    Usable as a decorator. Every dataclass is *sent* as a struct map; only registered ones
    are rebuilt on receipt (by keyword arguments, so ``__init__`` validates them).

    Raises:
        TypeError: ``cls`` is not a dataclass, or ``name`` is taken by another class.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"register_record takes a dataclass, got {cls!r}")
    key = name or f"{cls.__module__}.{cls.__qualname__}"
    holder = _records.get(key)
    if holder is not None and holder is not cls:
        raise TypeError(f"the record name {key!r} is taken by {holder!r}")
    _records[key] = cls
    cls.__dist_record_name__ = key  # type: ignore[attr-defined]
    return cls


def registered_records() -> dict[str, type[Any]]:
    """The record types this node rebuilds from structs, by wire name."""
    return dict(_records)


for _cls in (ProcessStatus, Ok, Refused, Failed):
    register_record(_cls)


def reason_to_term(reason: object) -> object:
    """An exit reason in its wire form (``str`` at the top and heading a tuple: atoms)."""
    if type(reason) is str:
        return _atom_or_text(reason)
    if type(reason) is tuple and reason and type(reason[0]) is str:
        return (_atom_or_text(reason[0]), *reason[1:])
    return reason


def term_to_reason(term: object) -> object:
    """An exit reason from the wire (atoms stay ``Atom``, equal to the kernel's strings)."""
    return term


def _atom_or_text(text: str) -> object:
    return Atom(text) if len(text) <= 255 else text


@final
class WireForms:
    """The translation for one connection (its peer's flags decide the call-tag form)."""

    def __init__(self, *, alias: bool) -> None:
        self.alias = alias

    # -- out -------------------------------------------------------------------------------

    def to_term(self, value: object) -> object:
        """The codec's fallback: the term for a value the codec does not know."""
        kind = type(value)
        if kind is CallMessage:
            return (GEN_CALL, self._from(value.from_), value.request)  # type: ignore[attr-defined]
        if kind is CastMessage:
            return (GEN_CAST, value.request)  # type: ignore[attr-defined]
        if kind is From:
            return self._from(value)  # type: ignore[arg-type]
        if kind is SystemMessage:
            return (SYSTEM, self._from(value.from_), _system_request(value.request))  # type: ignore[attr-defined]
        if kind is ExitMessage:
            return (EXIT_TAG, value.pid, reason_to_term(value.reason))  # type: ignore[attr-defined]
        if kind is DownMessage:
            down: DownMessage = value  # type: ignore[assignment]
            return (DOWN_TAG, down.ref, PROCESS, down.pid, reason_to_term(down.reason))
        if kind is NodeDownMessage:
            return (NODEDOWN, Atom(value.node))  # type: ignore[attr-defined]
        if kind is RemoteException:
            exc: RemoteException = value  # type: ignore[assignment]
            return (EXCEPTION_TAG, Atom(exc.type_name[:255]), exc.text)
        if isinstance(value, BaseException):
            cls = type(value)
            return (EXCEPTION_TAG, Atom(f"{cls.__module__}.{cls.__qualname__}"[:255]), str(value))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _struct(value)
        raise TypeError(
            f"cannot send a {kind.__qualname__} to another node: send terms (see "
            "server.dist.terms), or a dataclass"
        )

    def _from(self, from_: From) -> tuple[object, object]:
        ref = from_.ref
        if type(ref) is RemoteTag:
            return (from_.pid, ref.term)
        return (from_.pid, ImproperList((ALIAS,), ref) if self.alias else ref)

    def reply_term(self, tag: RemoteTag, value: object) -> tuple[object, object]:
        """The reply message ``{Tag, Reply}`` to a remote caller (OTP's forms for ``sys``)."""
        if tag.system:
            if type(value) is Ok:
                value = OK if value.value is None and tag.system == "ok" else value.value
            elif type(value) in (Refused, Failed):
                value = (ERROR, reason_to_term(value.reason))  # type: ignore[attr-defined]
        return (tag.term, value)

    # -- in --------------------------------------------------------------------------------

    def to_message(self, term: object) -> object:
        """A message from the wire as this node's processes expect it."""
        if type(term) is tuple and term:
            head = term[0]
            size = len(term)
            if head == GEN_CALL and size == 3 and type(head) is Atom:
                from_ = _incoming_from(term[1])
                if from_ is not None:
                    return CallMessage(from_, rebuild(term[2]))
            elif head == GEN_CAST and size == 2 and type(head) is Atom:
                return CastMessage(rebuild(term[1]))
            elif head == SYSTEM and size == 3 and type(head) is Atom:
                message = _incoming_system(term[1], term[2])
                if message is not None:
                    return message
            elif head == EXIT_TAG and size == 3 and type(term[1]) is Pid:
                return ExitMessage(term[1], rebuild(term[2]))
        return rebuild(term)


def reply_tag(term: object) -> Ref | None:
    """The local ref a reply ``{Tag, Value}`` answers, for the tags our calls use."""
    if type(term) is Ref:
        return term
    if type(term) is ImproperList and type(term.tail) is Ref and term.items == (ALIAS,):
        return term.tail
    return None


def _incoming_from(term: object) -> From | None:
    if type(term) is tuple and len(term) == 2 and type(term[0]) is Pid:
        return From(term[0], RemoteTag(term[1]))
    return None


_SYSTEM_REQUESTS: Final[dict[str, Callable[[], object]]] = {
    "suspend": Suspend,
    "resume": Resume,
    "get_state": GetState,
    "get_status": GetStatus,
}


def _incoming_system(from_term: object, request: object) -> SystemMessage | None:
    if type(from_term) is not tuple or len(from_term) != 2 or type(from_term[0]) is not Pid:
        return None
    built: object = None
    answer = "value"
    if type(request) is Atom and request in _SYSTEM_REQUESTS:
        built = _SYSTEM_REQUESTS[request]()
        if request in ("suspend", "resume"):
            answer = "ok"
    elif type(request) is tuple and request and type(request[0]) is Atom:
        if request[0] == "terminate" and len(request) == 2:
            built, answer = Terminate(request[1]), "ok"
        elif request[0] == "change_code" and len(request) == 4 and isinstance(request[1], str):
            built, answer = ChangeCode(str(request[1]), request[2], request[3]), "ok"
    if built is None:
        return None
    tag = RemoteTag(from_term[1], system=answer)
    return SystemMessage(From(from_term[0], tag), built)  # type: ignore[arg-type]


def _system_request(request: object) -> object:
    kind = type(request)
    if kind is Suspend:
        return Atom("suspend")
    if kind is Resume:
        return Atom("resume")
    if kind is GetState:
        return Atom("get_state")
    if kind is GetStatus:
        return Atom("get_status")
    if kind is Terminate:
        return (Atom("terminate"), reason_to_term(request.reason))  # type: ignore[attr-defined]
    if kind is ChangeCode:
        change: ChangeCode = request  # type: ignore[assignment]
        return (Atom("change_code"), Atom(change.module), change.old_vsn, change.extra)
    raise TypeError(f"{kind.__qualname__} cannot be sent to a process on another node")


def _struct(value: Any) -> dict[object, object]:
    cls = type(value)
    name = getattr(cls, "__dist_record_name__", None) or f"{cls.__module__}.{cls.__qualname__}"
    fields: dict[object, object] = {STRUCT_KEY: Atom(name[:255])}
    for field in dataclasses.fields(value):
        fields[Atom(field.name)] = getattr(value, field.name)
    return fields


def rebuild(term: object) -> object:
    """``term`` with the structs of registered record types turned back into instances."""
    kind = type(term)
    if kind is dict:
        items = term.items()  # type: ignore[attr-defined]
        rebuilt = {key: rebuild(value) for key, value in items}
        name = rebuilt.get(STRUCT_KEY)
        if type(name) is Atom:
            cls = _records.get(name)
            if cls is not None:
                try:
                    return cls(**{str(k): v for k, v in rebuilt.items() if k != STRUCT_KEY})
                except (TypeError, ValueError):
                    return rebuilt
        return rebuilt
    if type(term) is tuple:
        if len(term) == 3 and term[0] == EXCEPTION_TAG and type(term[0]) is Atom:
            text = term[2]
            return RemoteException(str(term[1]), text if isinstance(text, str) else repr(text))
        return tuple(rebuild(item) for item in term)
    if kind is list:
        return [rebuild(item) for item in term]  # type: ignore[attr-defined]
    return term
