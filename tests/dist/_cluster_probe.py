"""What the cluster tests run on the nodes under test, through ``rpc`` (``ALLOW``).

The nodes are real OS processes; a test reaches them with ``dist.rpc_call(node, MODULE,
function, args)`` (``PYTHONPATH`` points the nodes at the repository, so ``tests.``
imports). Each helper spawns a small process on the node that reports what it sees to a
process of the test (``report_to``), one plain tuple per fact, so the test waits on
messages rather than polling:

- ``watch(name, node, report_to)``: a process that links to the process registered as
  ``name`` on ``node``, monitors it by pid and by name and monitors the node; it reports
  ``("watching", me, pid)`` once that node has them, then ``("exit", me, reason)``, ``("down", me,
  "pid" | "name", reason)`` and ``("nodedown", me, node)`` as they come.
- ``call(name, node, request, report_to)``: a ``gen_server.call`` from this node;
  ``("reply", me, value)`` or ``("call_failed", me, error type, reason)``.
- ``target(name)``: a process registered as ``name`` that traps exits and ignores every
  message: something to watch whose links do not take it down (a link from a watcher to
  a server that does not trap exits, such as ``counter_store``, kills the server with
  ``noconnection`` when the connection goes: OTP's rule).
- ``hold(name, report_to)``: a process registered as ``name`` that never answers a call;
  it reports ``("held", me)`` for each message it gets.
- ``whereis(name)``, ``ping(node)``: plain answers.
"""

from __future__ import annotations

from typing import Final

from server import dist, kernel
from server.behaviours import gen_server
from server.errors import CalleeExited, CallError
from server.kernel import DownMessage, ExitMessage, NodeDownMessage, Pid

__all__ = ["ALLOW", "MODULE", "call", "hold", "ping", "target", "watch", "whereis"]

MODULE: Final = __name__
#: The ``rpc_allow`` entries a node under test needs.
ALLOW: Final = [
    f"{MODULE}:{name}" for name in ("call", "hold", "ping", "target", "watch", "whereis")
]


def whereis(name: str) -> Pid | None:
    """The pid registered as ``name`` here."""
    return kernel.whereis(str(name))


async def ping(node: str) -> bool:
    """``net_adm:ping`` from this node."""
    return await dist.ping(str(node), timeout=5.0)


def watch(name: str, node: str, report_to: Pid) -> Pid:
    """Start a watcher of ``(name, node)`` on this node; its pid."""
    return kernel.spawn(_watcher, str(name), str(node), report_to)


async def _watcher(name: str, node: str, report_to: Pid) -> None:
    me = kernel.self()
    kernel.trap_exit(True)
    pid = await dist.rpc_call(node, MODULE, "whereis", [name])
    if not isinstance(pid, Pid):
        kernel.send(report_to, ("watch_failed", me, repr(pid)))
        return
    kernel.link(pid)
    by_pid = kernel.monitor(pid)
    by_name = kernel.monitor((name, node))
    kernel.monitor_node(node)
    # a round trip from this process after its LINK and MONITORs: they have arrived
    await dist.rpc_call(node, MODULE, "whereis", [name])
    kernel.send(report_to, ("watching", me, pid))
    while True:
        message = await kernel.receive()
        match message:
            case ExitMessage(reason=reason):
                kernel.send(report_to, ("exit", me, reason))
            case DownMessage(ref=ref, reason=reason):
                kind = "pid" if ref is by_pid else "name" if ref is by_name else "other"
                kernel.send(report_to, ("down", me, kind, reason))
            case NodeDownMessage(node=down):
                kernel.send(report_to, ("nodedown", me, down))
            case _:
                kernel.send(report_to, ("stray", me, repr(message)))


def call(name: str, node: str, request: object, report_to: Pid, timeout: float = 30.0) -> Pid:
    """Start a ``gen_server.call((name, node), request)`` from this node; the caller's pid."""
    return kernel.spawn(_caller, str(name), str(node), request, report_to, float(timeout))


async def _caller(name: str, node: str, request: object, report_to: Pid, timeout: float) -> None:
    me = kernel.self()
    try:
        value = await gen_server.call((name, node), request, timeout=timeout)
    except CalleeExited as exc:
        kernel.send(report_to, ("call_failed", me, type(exc).__name__, exc.reason))
    except CallError as exc:
        kernel.send(report_to, ("call_failed", me, type(exc).__name__, str(exc)))
    else:
        kernel.send(report_to, ("reply", me, value))


def hold(name: str, report_to: Pid) -> Pid:
    """Start a process registered as ``name`` that takes calls and never answers."""
    pid = kernel.spawn(_holder, report_to)
    kernel.register(str(name), pid)
    return pid


async def _holder(report_to: Pid) -> None:
    me = kernel.self()
    while True:
        await kernel.receive()
        kernel.send(report_to, ("held", me))


def target(name: str) -> Pid:
    """Start a process registered as ``name`` that traps exits and ignores every message."""
    pid = kernel.spawn(_target)
    kernel.register(str(name), pid)
    return pid


async def _target() -> None:
    kernel.trap_exit(True)
    while True:
        await kernel.receive()
