"""One line for a node that failed: the deepest reason in words, not a nested report.

A boot that fails inside an application ends as an ``ApplicationError`` whose reason nests
the supervisor's and the child's (``('start_failed', StartError(... ('failed_to_start_child',
'web', 'cannot listen on 127.0.0.1:8080: Address already in use')))``). The operator needs
the innermost words and which application; the whole report is in the log already.
"""

from __future__ import annotations

from server.errors import ApplicationError, ServerError, StartError

__all__ = ["first_server_error", "in_words"]


def first_server_error(error: BaseException) -> ServerError | None:
    """The first ``ServerError`` in ``error`` or, for an exception group, in its leaves."""
    if isinstance(error, ServerError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = first_server_error(inner)
            if found is not None:
                return found
    return None


def in_words(error: ServerError) -> str:
    """The error in one line: an application's start failure said by its deepest reason."""
    if isinstance(error, ApplicationError) and error.reason is not None:
        cause = _deepest_text(error.reason)
        if cause is not None:
            return f"application {error.application} failed to start: {cause}"
    if isinstance(error, StartError):
        cause = _deepest_text(error.reason)
        if cause is not None:
            return f"{error.what} failed to start: {cause}"
    return str(error)


def _deepest_text(reason: object) -> str | None:
    """The last words at the bottom of a nested reason (tuples, start errors), if any."""
    found: str | None = None
    stack = [reason]
    depth = 0
    while stack and depth < 64:
        depth += 1
        item = stack.pop()
        if isinstance(item, str) and " " in item:
            found = item
        elif isinstance(item, (StartError, ApplicationError)):
            stack.append(item.reason)
        elif isinstance(item, tuple) and item:
            stack.append(item[-1])
        elif isinstance(item, BaseException):
            found = f"{type(item).__name__}: {item}"
    return found
