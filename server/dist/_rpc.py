"""Remote procedure calls between nodes: served from an allow-list, never arbitrary code.

Three ways in, one rule: a peer may run ``module:function`` on this node only when
``[node.dist] rpc_allow`` lists it; the function is imported by name from this node's own
code (nothing is unpickled or evaluated).

1. ``erpc:call`` and OTP 25's ``rpc:call`` from an Erlang node arrive as a SPAWN_REQUEST
   for ``erpc:execute_call(Ref, M, F, A)``: a process is spawned, monitored (and linked)
   for the requester as asked, runs the function, and ends with the result as its exit
   reason, ``{Ref, return, Value}``, or ``{Ref, error, Reason, []}``; the requester's
   monitor carries it back. A SPAWN_REQUEST for an allowed ``M:F`` itself (``spawn/4``)
   runs ``F(*A)`` in a new process.
2. ``rpc.call(node, module, function, args)`` from Python asks the ``rex`` server of the
   other node (``gen_server.call({rex, Node}, {call, M, F, A, GroupLeader})``), which both
   OTP and this node run; ``{badrpc, Reason}`` raises ``RpcError``.
3. Output an Erlang function writes during a call from here goes to this node's group
   leader stand-in, which logs it and answers the io protocol.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import TYPE_CHECKING, Any, Final

from server import kernel
from server.behaviours import gen_server
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.dist._records import reason_to_term
from server.dist.terms import Atom
from server.errors import RpcError
from server.kernel import Pid, ProcessExit

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from server.dist._connection import Connection
    from server.kernel import From

__all__ = ["REX", "call", "serve_spawn_request"]

logger = logging.getLogger("server.dist")

REX: Final = "rex"
GROUP_LEADER: Final = "dist_group_leader"
_ERPC: Final = Atom("erpc")
_EXECUTE_CALL: Final = Atom("execute_call")
_BADRPC: Final = Atom("badrpc")
_RETURN: Final = Atom("return")
_ERROR: Final = Atom("error")


def resolve(allow: frozenset[str], module: object, function: object) -> Callable[..., Any]:
    """The allowed function ``module:function``.

    Raises:
        PermissionError: it is not in the allow-list (nothing is imported).
        LookupError: it is listed but does not exist.
    """
    key = f"{module}:{function}"
    if key not in allow:
        raise PermissionError(f"{key} is not in [node.dist] rpc_allow")
    try:
        target = getattr(importlib.import_module(str(module)), str(function))
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"{key} is allowed but cannot be found: {exc}") from None
    if not callable(target):
        raise LookupError(f"{key} is not a function")
    return target  # type: ignore[no-any-return]


async def _apply(fn: Callable[..., Any], args: Sequence[object]) -> object:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


# -- served: SPAWN_REQUEST -----------------------------------------------------------------


def serve_spawn_request(
    allow: frozenset[str],
    conn: Connection,
    req_id: object,
    requester: Pid,
    mfa: object,
    opts: object,
    args: object,
) -> None:
    """Answer a SPAWN_REQUEST (``erpc``, ``rpc:call``, ``spawn/4`` from another node)."""
    if type(mfa) is not tuple or len(mfa) != 3 or not isinstance(args, list):
        conn.spawn_reply(req_id, requester, 0, Atom("badarg"))
        return
    module, function, _arity = mfa
    options = opts if isinstance(opts, list) else []
    link = Atom("link") in options
    monitor = any(
        option == "monitor" or (type(option) is tuple and option and option[0] == "monitor")
        for option in options
    )
    reply_mode = next(
        (o[1] for o in options if type(o) is tuple and len(o) == 2 and o[0] == "reply"), "yes"
    )
    if module == _ERPC and function == _EXECUTE_CALL and len(args) == 4:
        body: Callable[..., Any] = _execute_call
        body_args: tuple[object, ...] = (allow, *args)
    else:
        try:
            fn = resolve(allow, module, function)
        except (PermissionError, LookupError) as exc:
            logger.warning(
                "refused a spawn of %s:%s from %s: %s",
                module,
                function,
                requester,
                exc,
                extra={"peer": conn.remote.name},
            )
            conn.spawn_reply(req_id, requester, 0, Atom("badarg"))
            return
        body, body_args = _run, (fn, args)
    pid = kernel.spawn(body, *body_args)
    remote = conn.remote
    flags = 0
    if monitor:
        remote.incoming_monitor(requester, pid, req_id)
        flags |= 2
    if link:
        remote.incoming_link(requester, pid)
        flags |= 1
    if reply_mode == "yes":
        conn.spawn_reply(req_id, requester, flags, pid)


async def _run(fn: Callable[..., Any], args: list[object]) -> None:
    await _apply(fn, args)


async def _execute_call(
    allow: frozenset[str], ref: object, module: object, function: object, args: object
) -> None:
    """``erpc:execute_call/4``: the result is this process's exit reason."""
    try:
        if not isinstance(args, list):
            raise TypeError("the arguments of an rpc are a list")
        fn = resolve(allow, module, function)
        value = await _apply(fn, args)
    except PermissionError:
        arity = len(args) if isinstance(args, list) else 0
        reason: object = (Atom("not_allowed"), (module, function, arity))
        raise ProcessExit((ref, _ERROR, reason, []), report=False) from None
    except LookupError:
        raise ProcessExit((ref, _ERROR, Atom("undef"), []), report=False) from None
    except Exception as exc:
        logger.warning("rpc %s:%s raised %r", module, function, exc)
        raise ProcessExit((ref, _ERROR, reason_to_term(exc), []), report=False) from None
    raise ProcessExit((ref, _RETURN, value), report=False)


# -- served: rex ---------------------------------------------------------------------------


async def init(allow: frozenset[str]) -> object:
    """The ``rex`` server: answers ``{call, M, F, A, GroupLeader}`` from other nodes."""
    return Ok(allow)


async def handle_call(request: object, from_: From, allow: frozenset[str]) -> object:
    match request:
        case (Atom("call"), module, function, list(args), *_):
            kernel.spawn(_rex_worker, allow, from_, module, function, args)
            return NoReply(allow)
    return Reply((_BADRPC, Atom("unknown_request")), allow)


async def handle_cast(request: object, allow: frozenset[str]) -> object:
    return NoReply(allow)


async def handle_info(message: object, allow: frozenset[str]) -> object:
    return NoReply(allow)


async def _rex_worker(
    allow: frozenset[str], from_: From, module: object, function: object, args: list[object]
) -> None:
    try:
        fn = resolve(allow, module, function)
        value = await _apply(fn, args)
    except PermissionError:
        value = (_BADRPC, (Atom("not_allowed"), (module, function, len(args))))
    except LookupError:
        value = (_BADRPC, (Atom("EXIT"), (Atom("undef"), [])))
    except Exception as exc:
        value = (_BADRPC, (Atom("EXIT"), (reason_to_term(exc), [])))
    kernel.reply(from_, value)


# -- the caller's side ---------------------------------------------------------------------


async def call(
    node: str,
    module: str,
    function: str,
    args: Sequence[object] = (),
    *,
    timeout: float = 5.0,
) -> object:
    """Run ``module:function(*args)`` on ``node`` and return its result.

    Works against Erlang nodes (their ``rex``) and this project's nodes (where the function
    must be in the other node's ``rpc_allow``).

    Raises:
        RpcError: the other node answered ``{badrpc, Reason}`` (refused, crashed, undefined).
        CalleeExited: the node cannot be reached (``noconnection``) or its ``rex`` is gone.
        CallTimeout: no answer within ``timeout``.
    """
    leader = kernel.whereis(GROUP_LEADER)
    request = (Atom("call"), Atom(module), Atom(function), list(args), leader or kernel.self())
    answer = await gen_server.call((REX, node), request, timeout=timeout)
    if type(answer) is tuple and len(answer) == 2 and answer[0] == _BADRPC:
        raise RpcError(node, f"{module}:{function}", answer[1])
    return answer


async def group_leader() -> None:
    """Stand in for a group leader: log what remote code writes, answer the io protocol."""
    while True:
        message = await kernel.receive()
        if type(message) is tuple and len(message) == 4 and message[0] == "io_request":
            _tag, sender, reply_as, request = message
            if type(request) is tuple and request and request[0] == "put_chars":
                logger.info("remote output: %s", request[-1], extra={"from": repr(sender)})
            if type(sender) is Pid:
                kernel.send(sender, (Atom("io_reply"), reply_as, Atom("ok")))
