"""The release agent: a node's release handler, answered for to the other nodes.

A gen_server registered as ``release_agent`` on every distributed node. Its requests and
answers are plain terms (tuples of atoms, lists of maps), so any node of the cluster, or an
Erlang shell, can ask: ``gen_server:call({release_agent, Node}, {which_releases})``.

===========================  =====================================================
request                      answer
===========================  =====================================================
``{which_releases}``         ``{ok, [#{name, vsn, status, applications}]}``
anything else                ``{error, unknown_request}``
===========================  =====================================================

A failure of the local release handler (none running yet, or it refused) is answered
``{error, Text}``, never a crash of the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from server.behaviours import gen_server
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.dist import Atom
from server.errors import CallError, ServerError
from server.release import handler

if TYPE_CHECKING:
    from server.kernel import From, Pid

__all__ = ["AGENT", "start_agent"]

AGENT: Final = "release_agent"
OK: Final = Atom("ok")
ERROR: Final = Atom("error")


async def start_agent() -> Pid:
    """Start this node's release agent, linked to the caller.

    Raises:
        StartError: it could not start (the name is taken).
    """
    pid = await gen_server.start_link(__name__, None, name=AGENT)
    assert pid is not None
    return pid


async def init(args: object) -> Ok:
    return Ok(None)


async def handle_call(request: object, from_: From, state: None) -> object:
    match request:
        case (Atom("which_releases"),) | ("which_releases",):
            try:
                rows = await handler.which_releases()
            except (ServerError, CallError) as exc:
                return Reply((ERROR, str(exc)), state)
            return Reply((OK, rows), state)
    return Reply((ERROR, Atom("unknown_request")), state)


async def handle_cast(request: object, state: None) -> object:
    return NoReply(state)


async def handle_info(message: object, state: None) -> object:
    return NoReply(state)
