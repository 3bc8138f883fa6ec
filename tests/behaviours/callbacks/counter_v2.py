"""Version 2 of ``counter``: answers ``get`` with a tagged value, migrates by adding 1000.

Tests point ``counter``'s name at this module through ``_dispatch.set_resolver`` to stand in
for the code server loading a new version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "2"


def init(args: Any) -> object:
    return Ok(0)


def handle_call(request: Any, from_: From, state: int) -> object:
    if request == "get":
        return Reply(("v2", state), state)
    return Reply(("v2 unknown", request), state)


def handle_cast(request: Any, state: int) -> object:
    if isinstance(request, tuple) and request[0] == "add":
        return NoReply(state + 2 * request[1])
    return NoReply(state)


def code_change(old_vsn: Any, state: int, extra: Any) -> int:
    if old_vsn == ("down", "1"):
        return state - 1000
    return state + 1000
