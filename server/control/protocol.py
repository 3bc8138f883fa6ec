"""The control socket's wire protocol: one JSON object per line, each a pydantic model.

How this works:

1. A client sends ``Request`` lines; the node answers each with zero or more ``Progress``
   lines (for long commands) and then exactly one final line, ``Reply`` (``ok: true``) or
   ``ErrorReply`` (``ok: false``), all carrying the request's ``id``. Requests on one
   connection are answered in the order they were sent.
2. A line is the UTF-8 JSON text of one object followed by a newline. ``encode`` never puts a
   raw newline inside a line (JSON escapes it in strings), so framing is a byte search.
3. ``LineDecoder`` is the sans-IO framer: feed it chunks as they come, it hands back
   complete lines. It keeps at most ``max_line`` bytes of an unfinished line: a longer one
   is dropped as it arrives, up to its newline, and reported once as ``LineTooLong``.
4. ``parse_request`` never raises: bad UTF-8, bad JSON, a non-object, wrong types, unknown
   keys all give an ``ErrorReply`` (type ``bad_request``) whose message names the field;
   it carries the request's id when one could be read, else ``None``.

Nothing here does I/O or imports anyio: the server and the client are thin shells over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

__all__ = [
    "BAD_REPLY",
    "BAD_REQUEST",
    "BUSY",
    "COMMAND_PATTERN",
    "DEFAULT_MAX_LINE",
    "FORBIDDEN",
    "IDLE_TIMEOUT",
    "INTERNAL",
    "LINE_TOO_LONG",
    "UNKNOWN_COMMAND",
    "ErrorInfo",
    "ErrorReply",
    "LineDecoder",
    "LineTooLong",
    "Progress",
    "ProgressInfo",
    "Reply",
    "Request",
    "ServerMessage",
    "encode",
    "error_reply",
    "parse_reply",
    "parse_request",
]

#: What a command name looks like (the ``command`` of a ``Request``).
COMMAND_PATTERN: Final = r"^[a-z][a-z_]*$"

#: The longest line either side accepts by default (bytes, newline excluded).
DEFAULT_MAX_LINE: Final = 1024 * 1024

# Error types of the protocol itself. A handler's ``ServerError`` is reported under its
# class name instead (``NotPurged``, ``ReleaseError``, ...).
BAD_REQUEST: Final = "bad_request"  # the line is not a valid Request
LINE_TOO_LONG: Final = "line_too_long"  # the line was longer than the limit; it was dropped
UNKNOWN_COMMAND: Final = "unknown_command"  # no handler for the command
INTERNAL: Final = "internal"  # the handler failed unexpectedly (details in the node's log)
FORBIDDEN: Final = "forbidden"  # the peer runs as another user
BUSY: Final = "busy"  # the node has too many control connections open
IDLE_TIMEOUT: Final = "idle_timeout"  # no request came in time; the connection is closed
EXPIRED: Final = "expired"  # read after its ``not_after``: the client gave up; not run
BAD_REPLY: Final = "bad_reply"  # (client side) the node's line is not a valid message

_WIRE = ConfigDict(frozen=True, extra="forbid", strict=True)


class Request(BaseModel):
    """A command for the node: ``{"id": 1, "command": "which_releases", "args": {}}``."""

    model_config = _WIRE

    id: int
    command: Annotated[str, Field(pattern=COMMAND_PATTERN, max_length=64)]
    args: dict[str, JsonValue] = Field(default_factory=dict)
    #: Unix time after which the client no longer waits: a request the node reads later
    #: is answered ``expired`` and not run, so a command the CLI gave up on never runs
    #: behind the operator's back (a node out of descriptors reads it late, for one).
    not_after: float | None = None


class ErrorInfo(BaseModel):
    """What went wrong: a type to act on (an error class name or a protocol error type)."""

    model_config = _WIRE

    type: str
    message: str


class Reply(BaseModel):
    """The command succeeded with ``result``."""

    model_config = _WIRE

    id: int
    ok: Literal[True] = True
    result: JsonValue


class ErrorReply(BaseModel):
    """The command failed, or the line was not a valid request (then ``id`` may be None)."""

    model_config = _WIRE

    id: int | None
    ok: Literal[False] = False
    error: ErrorInfo


class ProgressInfo(BaseModel):
    """One step of a long command: ``done`` of ``total`` (None when not known).

    ``rows`` is a table of the work's parts as they stand (a cluster rollout: one row per
    node), for a client that shows it live.
    """

    model_config = _WIRE

    step: str
    done: Annotated[int, Field(ge=0)]
    total: Annotated[int, Field(ge=0)] | None = None
    detail: str = ""
    rows: list[dict[str, JsonValue]] | None = None


class Progress(BaseModel):
    """A progress event, streamed before the final reply of request ``id``."""

    model_config = _WIRE

    id: int
    progress: ProgressInfo


#: Anything the node sends.
ServerMessage = Reply | ErrorReply | Progress

_server_message: TypeAdapter[Reply | ErrorReply | Progress] = TypeAdapter(ServerMessage)


def encode(message: BaseModel) -> bytes:
    """One wire line: the model's JSON and a newline."""
    body = message.model_dump_json().encode()
    if b"\n" in body:  # JSON escapes newlines in strings; this is a guard, not a path
        raise ValueError(f"encoded {type(message).__name__} contains a newline")
    return body + b"\n"


def error_reply(request_id: int | None, error_type: str, message: str) -> ErrorReply:
    """An ``ErrorReply`` in one call."""
    return ErrorReply(id=request_id, error=ErrorInfo(type=error_type, message=message))


# -- framing ---------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line exceeded ``limit`` bytes; it was dropped (up to its newline)."""

    limit: int

    @property
    def message(self) -> str:
        """Says what happened, for an ``ErrorReply``."""
        return f"line longer than {self.limit} bytes: dropped up to its newline"


@final
class LineDecoder:
    """Splits a byte stream into lines (sans-IO): ``feed`` chunks, get complete lines.

    Lines are returned without their newline. At most ``max_line`` bytes of an unfinished
    line are kept; a longer line is dropped as it arrives, up to and including its newline,
    and reported once by a ``LineTooLong`` item in its place.
    """

    __slots__ = ("_buffer", "_skipping", "max_line")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, got {max_line}")
        self.max_line = max_line
        self._buffer = bytearray()
        self._skipping = False

    @property
    def buffered(self) -> int:
        """How many bytes of an unfinished line are held."""
        return len(self._buffer)

    @property
    def skipping(self) -> bool:
        """True while the rest of an oversized line is being dropped."""
        return self._skipping

    def feed(self, chunk: bytes) -> list[bytes | LineTooLong]:
        """Take the next chunk; return the lines (and oversize reports) it completes."""
        out: list[bytes | LineTooLong] = []
        start = 0
        end = len(chunk)
        while start < end:
            newline = chunk.find(b"\n", start)
            stop = end if newline < 0 else newline
            if self._skipping:
                if newline >= 0:
                    self._skipping = False
            elif len(self._buffer) + (stop - start) > self.max_line:
                self._buffer.clear()
                out.append(LineTooLong(self.max_line))
                self._skipping = newline < 0
            elif newline >= 0:
                if self._buffer:
                    self._buffer += chunk[start:stop]
                    out.append(bytes(self._buffer))
                    self._buffer.clear()
                else:
                    out.append(chunk[start:stop])
            else:
                self._buffer += chunk[start:stop]
            if newline < 0:
                break
            start = newline + 1
        return out


# -- parsing ---------------------------------------------------------------------------------


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _load_object(line: bytes) -> dict[str, Any] | str:
    """The line's JSON object, or a message saying why it is not one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return "not JSON: nested too deeply"
    except ValueError as exc:  # NaN / Infinity, an integer too long to convert
        return f"not JSON: {exc}"
    if not isinstance(value, dict):
        return f"expected a JSON object, got {_json_kind(value)}"
    return value


def _json_kind(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
    return type(value).__name__  # pragma: no cover - json.loads makes nothing else


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "request"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_request(line: bytes) -> Request | ErrorReply:
    """Read one line as a ``Request``; never raises.

    Returns:
        The request, or an ``ErrorReply`` of type ``bad_request`` saying what is wrong
        (with the line's id when it has a readable integer one).
    """
    value = _load_object(line)
    if isinstance(value, str):
        return error_reply(None, BAD_REQUEST, value)
    raw_id = value.get("id")
    request_id = raw_id if type(raw_id) is int else None
    try:
        return Request.model_validate(value)
    except ValidationError as exc:
        return error_reply(request_id, BAD_REQUEST, f"invalid request: {_describe(exc)}")
    except RecursionError:  # pragma: no cover - json.loads gives up before validation does
        return error_reply(request_id, BAD_REQUEST, "invalid request: nested too deeply")


def parse_reply(line: bytes) -> Reply | ErrorReply | Progress:
    """Read one line from the node (client side).

    Raises:
        ValueError: the line is not one of the node's messages (says why).
    """
    value = _load_object(line)
    if isinstance(value, str):
        raise ValueError(value)
    try:
        return _server_message.validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"not a reply: {_describe(exc)}") from None
