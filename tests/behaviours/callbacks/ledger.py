"""A gen_server whose state is a dict of ints, with a ``code_change`` steered by ``extra``.

``code_change`` (async, so both the path that never waits and the one that does are run):
``"ok"`` adds ``"migrated": 1``; ``"wait"`` waits a step first; ``"mutate_then_fail"``
writes into the state it is given, then raises; ``"hang"`` never returns.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from server.behaviours.gen_server_callbacks import Ok, Reply

__vsn__ = "1"

State = dict[str, int]


def init(args: Any) -> Ok:
    return Ok({"a": int(args), "b": 0})


def handle_call(request: Any, from_: Any, state: State) -> Reply:
    if request == "state":
        return Reply(dict(state), state)
    return Reply(("unknown", request), state)


async def code_change(old_vsn: Any, state: State, extra: Any) -> State:
    if extra == "mutate_then_fail":
        state["a"] = -1
        raise RuntimeError("half migrated")
    if extra == "hang":
        await anyio.sleep(math.inf)
    if extra == "wait":
        await checkpoint()
    return {**state, "migrated": 1}
