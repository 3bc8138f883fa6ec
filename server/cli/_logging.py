"""Logging set-up for the ``server`` command: one line per record, facts appended."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _FactsFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, with a traceback if the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        facts = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD and key != "traceback" and value is not None
        }
        if facts:
            line += " " + " ".join(f"{key}={value}" for key, value in facts.items())
        text = record.__dict__.get("traceback")
        if text:
            line += "\n" + str(text).rstrip()
        return line


def configure_logging(level: str = "INFO") -> None:
    """Send the server's logs to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FactsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
