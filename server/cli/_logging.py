"""Logging set-up for the ``server`` command: one line per record, as text or JSON.

- ``text``: ``time level logger: message key=value ...``, a traceback below when there is one.
- ``json``: one object per line: ``time``, ``level``, ``logger``, ``message``, every fact
  given as ``extra``, and ``traceback`` when there is one (for log shippers).

With a log file, ``reopen_logs`` (the node calls it on SIGHUP) closes and opens it again,
so that a log rotated away is let go and a new file is started.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import time
from typing import Literal

__all__ = ["LogFormat", "configure_logging", "reopen_logs"]

LogFormat = Literal["text", "json"]

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


_NOT_FACTS = frozenset(_STANDARD | {"traceback"})


def _facts(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if value is not None and key not in _NOT_FACTS
    }


def _traceback(record: logging.LogRecord, formatter: logging.Formatter) -> str | None:
    text = record.__dict__.get("traceback")
    if text:
        return str(text).rstrip()
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return None


class _FactsFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, with a traceback if the record has one."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The stock ``asctime`` text; the date and time part is made once per second."""
        msec_format = self.default_msec_format
        if datefmt is not None or msec_format is None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return msec_format % (self._second_text, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.message}"
        facts = _facts(record)
        if facts:
            line += " " + " ".join(f"{key}={value}" for key, value in facts.items())
        text = _traceback(record, self)
        if text:
            line += "\n" + text
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per record; facts that are not JSON values are given as text."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        entry: dict[str, object] = {
            "time": stamp.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_facts(record))
        text = _traceback(record, self)
        if text:
            entry["traceback"] = text
        return json.dumps(entry, default=str)


_handler: logging.Handler | None = None


def configure_logging(
    level: str = "INFO", *, log_format: LogFormat = "text", log_file: str | None = None
) -> None:
    """Send the server's logs to stderr (or ``log_file``, appended) at ``level``."""
    global _handler
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr)
        if log_file is None
        else logging.FileHandler(log_file, encoding="utf-8", delay=False)
    )
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _FactsFormatter())
    # neither format shows a record's process or thread: do not look them up for each one
    logging.logProcesses = logging.logMultiprocessing = logging.logThreads = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _handler = handler


def reopen_logs() -> bool:
    """Close and open the log file again (after a rotation); False when logging to stderr."""
    handler = _handler
    if not isinstance(handler, logging.FileHandler):
        return False
    handler.acquire()
    try:
        if handler.stream is not None:
            handler.stream.close()
        handler.stream = handler._open()
    finally:
        handler.release()
    return True
