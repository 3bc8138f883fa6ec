"""The crash report: a log record whose traceback is formatted only when it is emitted.

How this works:

1. A process that ends with an exception is reported at ERROR on ``server.kernel``. The
   report is skipped outright when no handler would take it (``would_emit``: the logger is
   not enabled for ERROR, or no handler on its path has a level that low), so a node with
   logging off formats nothing.
2. Otherwise the node hands a ``CrashReport`` to ``logger.handle``. Its ``traceback``
   attribute is not in the record yet: the first read (``getMessage``, which every
   formatter calls while emitting, ``record.traceback`` or ``record.__dict__["traceback"]``)
   formats it and stores the text in the record, so a handler that filters the record out
   costs no formatting, and a handler that keeps it (a queue, a test's capture) keeps text.
3. The record holds the traceback objects of the exception and its chain itself, so the
   text stays complete when the node drops the frames from the exit reason right after
   the report (``forget_traceback``) and a handler formats later.
4. ``format_exception`` gives the text ``traceback.format_exception`` gives, faster: the
   frame lines (source line, position carets) are formatted once per code location and
   cached (a code object's positions are a linear scan and its carets a parse of the
   line). Exception groups, syntax errors and ``sys.tracebacklimit`` take the stdlib's path.
"""

from __future__ import annotations

import functools
import itertools
import linecache
import logging
import sys
import traceback
import weakref
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from types import CodeType, TracebackType

__all__ = ["CrashReport", "exception_chain", "format_exception", "would_emit"]

#: Formatted frame lines per code object (by ``id``: hashing a code object hashes all of
#: it), per instruction offset. Each entry holds its code object weakly and goes with it,
#: so a purged module version takes its entries along.
_frames: dict[int, tuple[weakref.ref[CodeType], dict[int, tuple[int, str]]]] = {}

# what traceback.StackSummary.format prints for a recursion (the same cut-off)
_RECURSIVE_CUTOFF = 3

# the stdlib's own texts between chained exceptions (as it spells them, where it has them)
_CAUSE: str = getattr(
    traceback,
    "_cause_message",
    "\nThe above exception was the direct cause of the following exception:\n\n",
)
_CONTEXT: str = getattr(
    traceback,
    "_context_message",
    "\nDuring handling of the above exception, another exception occurred:\n\n",
)


def would_emit(logger: logging.Logger, level: int) -> bool:
    """True when a record of ``level`` on ``logger`` would reach a handler.

    The same walk ``Logger.callHandlers`` makes (handler filters are not run); with no
    handler at all, ``logging.lastResort`` counts.
    """
    if not logger.isEnabledFor(level):
        return False
    found = False
    node: logging.Logger | None = logger
    while node is not None:
        for handler in node.handlers:
            found = True
            if level >= handler.level:
                return True
        if not node.propagate:
            break
        node = node.parent
    if found:
        return False
    last = logging.lastResort
    return last is not None and level >= last.level


def format_exception(exc: BaseException, tracebacks: dict[int, TracebackType | None]) -> str:
    """The text of ``"".join(traceback.format_exception(exc))``, made faster.

    Each exception's frames are taken from ``tracebacks`` (by ``id``) where it has an
    entry, else from its ``__traceback__``.
    """
    chain = _chain(exc)
    if chain is None or getattr(sys, "tracebacklimit", None) is not None:
        return _stdlib_format(exc, tracebacks)
    try:
        return _fast_format(chain, tracebacks)
    except Exception:  # a Python whose traceback module differs: its own text, slower
        return _stdlib_format(exc, tracebacks)


def _fast_format(
    chain: list[tuple[str | None, BaseException]], tracebacks: dict[int, TracebackType | None]
) -> str:
    out: list[str] = []
    for message, item in reversed(chain):
        if message is not None:
            out.append(message)
        tb = tracebacks.get(id(item), item.__traceback__)
        if tb is not None:
            out.append("Traceback (most recent call last):\n")
            _format_stack(tb, out)
        only = traceback.TracebackException(type(item), item, None, _seen=set())
        out.extend(only.format_exception_only())
    return "".join(out)


def _chain(exc: BaseException) -> list[tuple[str | None, BaseException]] | None:
    """The exceptions printed, each with the message that leads to the next one.

    The walk of ``format_exception``'s compact ``TracebackException``; None for a chain
    that holds an exception group or a syntax error (the stdlib formats those).
    """
    chain: list[tuple[str | None, BaseException]] = []
    seen: set[int] = {id(exc)}
    item: BaseException | None = exc
    while item is not None:
        if isinstance(item, BaseExceptionGroup | SyntaxError):
            return None
        following: BaseException | None = None
        message: str | None = None
        cause = item.__cause__
        if cause is not None and id(cause) not in seen:
            following, message = cause, _CAUSE
        elif not item.__suppress_context__:
            context = item.__context__
            if context is not None and id(context) not in seen:
                following, message = context, _CONTEXT
        chain.append((message, item))
        if following is not None:
            seen.add(id(following))
        item = following
    return chain


def _format_stack(tb: TracebackType | None, out: list[str]) -> None:
    """``StackSummary.format`` over the frames of ``tb``, from the frame cache."""
    last: tuple[str, int, str] | None = None
    count = 0
    while tb is not None:
        code = tb.tb_frame.f_code
        lasti = tb.tb_lasti
        held = _frames.get(id(code))
        if held is None or held[0]() is not code:
            held = _frames[id(code)] = (weakref.ref(code, functools.partial(_forget, id(code))), {})
        by_offset = held[1]
        entry = by_offset.get(lasti)
        if entry is None:
            entry = by_offset[lasti] = _format_frame(tb)
        lineno, text = entry
        key = (code.co_filename, lineno, code.co_name)
        if key != last:
            if count > _RECURSIVE_CUTOFF:
                out.append(_repeated(count - _RECURSIVE_CUTOFF))
            last = key
            count = 0
        count += 1
        if count <= _RECURSIVE_CUTOFF:
            out.append(text)
        tb = tb.tb_next
    if count > _RECURSIVE_CUTOFF:
        out.append(_repeated(count - _RECURSIVE_CUTOFF))


def _forget(key: int, gone: weakref.ref[CodeType]) -> None:
    """A code object was freed: drop its entry (unless its id is already reused)."""
    held = _frames.get(key)
    if held is not None and held[0] is gone:
        del _frames[key]


def _repeated(count: int) -> str:
    return f"  [Previous line repeated {count} more time{'s' if count > 1 else ''}]\n"


def _format_frame(tb: TracebackType) -> tuple[int, str]:
    """One frame as ``traceback`` prints it (its line number and its lines)."""
    frame = tb.tb_frame
    code = frame.f_code
    lineno, end_lineno, colno, end_colno = _position(code, tb.tb_lasti)
    if lineno is None:
        lineno = tb.tb_lineno
    filename = code.co_filename
    linecache.lazycache(filename, frame.f_globals)
    linecache.checkcache(filename)
    summary = traceback.FrameSummary(
        filename,
        lineno,
        code.co_name,
        lookup_line=True,
        end_lineno=end_lineno,
        colno=colno,
        end_colno=end_colno,
    )
    return lineno, traceback.StackSummary().format_frame_summary(summary)


def _position(code: CodeType, lasti: int) -> tuple[Any, Any, Any, Any]:
    if lasti < 0:
        return None, None, None, None
    return next(itertools.islice(code.co_positions(), lasti // 2, None))


def _stdlib_format(exc: BaseException, tracebacks: dict[int, TracebackType | None]) -> str:
    """The stdlib's text, with the held tracebacks put back for the time it takes."""
    dropped = [
        (item, tb)
        for item, tb in _walk(exc, tracebacks)
        if item.__traceback__ is None and tb is not None
    ]
    for item, tb in dropped:
        item.__traceback__ = tb
    try:
        return "".join(traceback.format_exception(exc))
    finally:
        for item, _ in dropped:
            item.__traceback__ = None


def exception_chain(exc: BaseException) -> list[BaseException]:
    """Every exception reachable from ``exc`` (causes, contexts, group members), each once."""
    found: list[BaseException] = []
    seen: set[int] = set()
    stack = [exc]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        if item.__cause__ is not None:
            stack.append(item.__cause__)
        if item.__context__ is not None:
            stack.append(item.__context__)
        if isinstance(item, BaseExceptionGroup):
            stack.extend(item.exceptions)
    return found


def _walk(
    exc: BaseException, tracebacks: dict[int, TracebackType | None]
) -> list[tuple[BaseException, TracebackType | None]]:
    """Every exception reachable from ``exc``, with the traceback it had when it was raised."""
    return [(item, tracebacks.get(id(item), item.__traceback__)) for item in exception_chain(exc)]


@final
class CrashReport(logging.LogRecord):
    """A log record with a ``traceback`` text fact that is formatted on first use."""

    # a slot, not an entry of ``__dict__``: formatters that list a record's facts (and
    # copies made of its ``__dict__``) never see the exception and its frames
    __slots__ = ("_crash",)

    def __init__(
        self,
        name: str,
        msg: str,
        args: tuple[object, ...],
        facts: dict[str, object],
        exc: BaseException | None,
    ) -> None:
        caller = sys._getframe(1)  # where the report is written, as findCaller would say
        code = caller.f_code
        super().__init__(
            name, logging.ERROR, code.co_filename, caller.f_lineno, msg, args, None, code.co_name
        )
        self.__dict__.update(facts)
        # the traceback of every exception in the chain, held here (see 3. above)
        self._crash: tuple[BaseException, dict[int, TracebackType | None]] | None = None
        if exc is None:
            self.__dict__["traceback"] = None
        else:
            self._crash = (exc, {id(item): tb for item, tb in _walk(exc, {})})

    def __getattr__(self, name: str) -> object:
        if name == "traceback":
            return self._render()
        raise AttributeError(name)

    def getMessage(self) -> str:
        """The message, with the traceback made ready for the formatter that asks."""
        self._render()
        return super().getMessage()

    def _render(self) -> str | None:
        crash = self._crash
        if crash is not None:
            self._crash = None
            self.__dict__["traceback"] = format_exception(*crash)
        text: str | None = self.__dict__.get("traceback")
        return text
