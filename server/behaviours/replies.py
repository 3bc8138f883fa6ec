"""The typed replies of every server built on gen_server: ``Ok``, ``Refused``, ``Failed``.

How this works:

1. The API function of a server (``supervisor.start_child``, ``controller.load_application``,
   ``handler.install``, a ``sys`` call) sends a frozen request record; the server process
   matches it and answers with one of these three records, never a bare tuple.
2. ``Ok(value)``: done, ``value`` is the result. ``Refused(reason)``: not accepted as things
   stand (unknown child, already loaded, another install running); nothing changed.
   ``Failed(reason, traceback_text)``: tried, and the attempt failed (a child that did not
   start, a ``code_change`` that raised, an install that failed after its point of no
   return).
3. ``reason`` is a value that says what happened: a string, a tuple of facts, a small frozen
   record, or an exit reason (which, as everywhere, may be the exception a callback raised,
   its traceback cleared). It is never an exception built for the caller to raise, nor a
   callable or an open resource: the API function matches the reply and raises the
   exception in the caller's process, built from those facts, so its traceback shows the
   caller's frames and a reply could later cross nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

__all__ = ["Failed", "Ok", "Refused", "ServerReply"]


@final
@dataclass(frozen=True, slots=True)
class Ok:
    """The request was done; ``value`` is its result."""

    value: object = None


@final
@dataclass(frozen=True, slots=True)
class Refused:
    """Not accepted in the current state (OTP's ``{error, Reason}``); nothing changed."""

    reason: object


@final
@dataclass(frozen=True, slots=True)
class Failed:
    """The request was tried and failed; ``traceback_text`` is the failure's traceback, if any."""

    reason: object
    traceback_text: str = ""


ServerReply = Ok | Refused | Failed
