"""The crash report: complete when a handler emits it, never formatted when nothing does."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.kernel._crash_report import format_exception

from ._helpers import reason_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from server.kernel import Node


class CountedError(Exception):
    """An exception that counts how often its text is made (formatting makes it)."""

    texts = 0

    def __str__(self) -> str:
        CountedError.texts += 1
        return "counted"


class Keep(logging.Handler):
    """Keeps each record, formats nothing; notes the stdlib's text of the crash at emit."""

    def __init__(self, raised: list[BaseException], level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.raised = raised
        self.kept: list[tuple[logging.LogRecord, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        texts = CountedError.texts
        # the frames are still there while the node writes the report
        expected = "".join(traceback.format_exception(self.raised[0])) if self.raised else ""
        CountedError.texts = texts  # the expectation is not the report's formatting
        self.kept.append((record, expected))


@pytest.fixture
def kernel_log() -> Iterator[Callable[[logging.Handler, int], None]]:
    """Gives ``server.kernel`` one handler and a level; no other handler sees its records."""
    log = logging.getLogger("server.kernel")
    saved = (log.handlers[:], log.propagate, log.level)
    CountedError.texts = 0

    def only(handler: logging.Handler, level: int) -> None:
        # in the test's body: the test run attaches its capture to non-propagating loggers
        # as each phase starts
        log.handlers[:] = [handler]
        log.propagate = False
        log.setLevel(level)

    try:
        yield only
    finally:
        log.handlers[:], log.propagate, log.level = saved


def crasher(raised: list[BaseException]) -> Callable[[], Awaitable[object]]:
    def inner() -> None:
        try:
            _ = {"present": 1}["missing"]
        except KeyError as cause:
            error = CountedError()
            raised.append(error)
            raise error from cause

    async def crashing_body() -> None:
        inner()

    async def tester() -> object:
        _, ref = kernel.spawn_monitor(crashing_body)
        return await reason_of(ref)

    return tester


async def test_the_report_is_complete_when_a_handler_formats_it_after_the_frames_are_gone(
    node: Node, kernel_log: Callable[[logging.Handler, int], None]
) -> None:
    raised: list[BaseException] = []
    keep = Keep(raised)
    kernel_log(keep, logging.ERROR)
    reason = await node.run_process(crasher(raised))
    assert reason is raised[0]
    assert reason.__traceback__ is None, "the exit reason keeps no frames"
    [(record, expected)] = keep.kept
    assert CountedError.texts == 0, "nothing was formatted before a handler asked"
    text = getattr(record, "traceback", None)
    assert text == expected, "the same text as traceback.format_exception at the crash"
    assert "crashing_body" in expected
    assert "inner" in expected
    assert "KeyError: 'missing'" in expected
    assert "direct cause" in expected
    assert record.__dict__["traceback"] == text, "kept in the record once made"
    assert record.getMessage().startswith("crash report: process ")
    assert record.__dict__["report"] == "crash_report"


async def test_the_report_is_the_stdlib_text_when_a_handler_emits_it(
    node: Node, kernel_log: Callable[[logging.Handler, int], None]
) -> None:
    raised: list[BaseException] = []
    seen: list[tuple[str, str]] = []

    class Formats(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            expected = "".join(traceback.format_exception(raised[0]))
            self.format(record)
            seen.append((record.__dict__["traceback"], expected))

    kernel_log(Formats(logging.ERROR), logging.ERROR)
    for _ in range(2):  # the second crash is formatted from the frame cache
        raised.clear()
        await node.run_process(crasher(raised))
    assert len(seen) == 2
    for text, expected in seen:
        assert text == expected


@pytest.mark.parametrize("how", ["logger level", "handler level", "handler filter"])
async def test_nothing_is_formatted_for_a_report_no_handler_emits(
    node: Node, kernel_log: Callable[[logging.Handler, int], None], how: str
) -> None:
    raised: list[BaseException] = []
    keep = Keep([], logging.CRITICAL if how == "handler level" else logging.ERROR)
    if how == "handler filter":
        keep.addFilter(lambda record: False)
    kernel_log(keep, logging.CRITICAL if how == "logger level" else logging.ERROR)
    reason = await node.run_process(crasher(raised))
    assert reason is raised[0], "the crash itself is unchanged"
    assert keep.kept == []
    assert CountedError.texts == 0, "the exception's text was never made"


def _recurse(depth: int) -> None:
    if depth == 0:
        raise ValueError("deep")
    _recurse(depth - 1)


def _raised(shape: str) -> BaseException:
    """An exception of ``shape``, raised and caught, its frames still attached."""
    try:
        if shape == "plain":
            _ = 1 // len("")
        elif shape == "cause":
            try:
                _ = {"present": 1}["missing"]
            except KeyError as cause:
                raise ValueError("outer") from cause
        elif shape == "context":
            try:
                _ = {"present": 1}["missing"]
            except KeyError:
                raise ValueError("while handling")  # noqa: B904 - the implicit context
        elif shape == "suppressed":
            try:
                _ = {"present": 1}["missing"]
            except KeyError:
                raise ValueError("suppressed") from None
        elif shape == "recursion":
            _recurse(30)
        elif shape == "notes":
            error = RuntimeError("noted")
            error.add_note("a note\nof two lines")
            raise error
        elif shape == "group":
            raise ExceptionGroup("group", [ValueError(1), TypeError(2)])
        elif shape == "syntax":
            compile("x = (", "<text>", "exec")
    except BaseException as exc:  # the exception is the test's subject
        return exc
    raise AssertionError(shape)


SHAPES = ["plain", "cause", "context", "suppressed", "recursion", "notes", "group", "syntax"]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_traceback_text_is_the_stdlib_text(shape: str) -> None:
    exc = _raised(shape)
    expected = "".join(traceback.format_exception(exc))
    assert format_exception(exc, {}) == expected
    assert format_exception(exc, {}) == expected, "the same again, from the frame cache"
