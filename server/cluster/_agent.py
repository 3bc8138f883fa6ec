"""The release agent: a node's release handler, answered for to the other nodes.

A gen_server registered as ``release_agent`` on every distributed node. Its requests and
answers are plain terms (tuples of atoms, binaries, lists and maps), so any node of the
cluster, or an Erlang shell, can ask: ``gen_server:call({release_agent, Node},
{which_releases})``. A rollout (``_rollout``) drives each node through these requests.

=====================================================  ==================================
request                                                answer ``{ok, Value}``
=====================================================  ==================================
``{which_releases}``                                   ``[#{name, vsn, status, applications}]``
``{package_chunk, File, Offset, Bytes}``               bytes received so far
``{package_unpack, File, Sha256Text, Sig | undefined}``  the vsn unpacked
``{check, Vsn}``                                       the check report (a map)
``{install, Vsn}``                                     the install report (a map)
``{health, Check, Status}``                            what the check saw (text)
``{confirm, Vsn}``                                     the vsn the node runs
``{make_permanent, Vsn}``                              the vsn made permanent
=====================================================  ==================================

A refusal or failure is answered ``{error, Kind, Text}`` (``Kind`` the error's class name as
an atom: ``InstallRefused``, ``InstallFailed``, ``UnpackError``, ``HealthCheckFailed``...),
never a crash of the agent; anything else is ``{error, unknown_request, Text}``.

The work of every request but the first runs in a process of its own that answers the
caller when done (a deferred reply), so the agent answers ``which_releases`` during an
install. The release handler serialises installs: a second one at once is refused there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio

from server import kernel
from server.behaviours import gen_server
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.cluster import _transfer
from server.cluster._health import parse_check, run_check
from server.dist import Atom
from server.errors import CallError, ServerError
from server.release import fault_hook, handler

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from server.kernel import From, Pid

__all__ = ["AGENT", "running_vsn", "start_agent"]

AGENT: Final = "release_agent"
OK: Final = Atom("ok")
ERROR: Final = Atom("error")


async def start_agent(root: Path) -> Pid:
    """Start this node's release agent for the node root ``root``, linked to the caller.

    Raises:
        StartError: it could not start (the name is taken).
    """
    pid = await gen_server.start_link(__name__, Path(root), name=AGENT)
    assert pid is not None
    return pid


async def init(root: Path) -> Ok:
    kernel.set_label("behaviour", "release_agent")
    return Ok(root)


async def handle_call(request: object, from_: From, root: Path) -> object:
    if not isinstance(request, tuple) or not request:
        return Reply(_unknown(request), root)
    if request[0] == "which_releases" and len(request) == 1:
        return Reply(await _answer(handler.which_releases), root)
    work = _work_for(root, request)
    if work is None:
        return Reply(_unknown(request), root)

    async def answer() -> None:
        kernel.reply(from_, await _answer(work))

    kernel.spawn(answer)
    return NoReply(root)


async def handle_cast(request: object, root: Path) -> object:
    return NoReply(root)


async def handle_info(message: object, root: Path) -> object:
    return NoReply(root)


def _unknown(request: object) -> tuple[object, ...]:
    return (ERROR, Atom("unknown_request"), f"the release agent does not know {request!r}"[:300])


async def _answer(work: Callable[[], Awaitable[object]]) -> tuple[object, ...]:
    try:
        return (OK, await work())
    except (ServerError, CallError) as exc:
        return (ERROR, Atom(type(exc).__name__), str(exc))
    except (ValueError, OSError) as exc:
        return (ERROR, Atom(type(exc).__name__), str(exc))


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _binary(value: object) -> bytes:
    """A binary as it arrived: ``str`` when it was valid UTF-8 (the codec's rule), else bytes."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise ValueError(f"expected a binary, got {type(value).__name__}")


def _work_for(root: Path, request: tuple[Any, ...]) -> Callable[[], Awaitable[object]] | None:
    """The work request ``request`` asks for, or None when it is not one."""
    match request:
        case ("package_chunk", name, int(offset), data):
            return lambda: anyio.to_thread.run_sync(
                _transfer.write_chunk, root, _text(name), offset, _binary(data)
            )
        case ("package_unpack", name, sha256, signature):
            return lambda: _unpack(root, _text(name), _binary(sha256), signature)
        case ("check", vsn):
            return lambda: handler.check_install(_text(vsn))
        case ("install", vsn):
            return lambda: _install(_text(vsn))
        case ("health", check, int(status)):
            return lambda: run_check(parse_check(_text(check), status))
        case ("confirm", vsn):
            return lambda: _confirm(root, _text(vsn))
        case ("make_permanent", vsn):
            return lambda: handler.make_permanent(_text(vsn))
    return None


async def _unpack(root: Path, name: str, sha256: bytes, signature: object) -> str:
    sig = None if signature is None else _binary(signature)
    path = await anyio.to_thread.run_sync(_transfer.write_sidecars, root, name, sha256, sig)
    try:
        return await handler.unpack(path)
    finally:
        await anyio.to_thread.run_sync(_transfer.discard, root, name)


async def _install(vsn: str) -> dict[str, Any]:
    report = await handler.install(vsn)
    return report.as_json()


async def _confirm(root: Path, vsn: str) -> str:
    """The vsn this node runs; the crash tests kill the node here (``rollout_confirm``)."""
    crash = fault_hook(root, "rollout_confirm")
    if crash is not None:
        crash(0)
    return str(running_vsn(await handler.which_releases()))


def running_vsn(rows: Iterable[Mapping[str, Any]]) -> str | None:
    """The release a node runs, from its ``which_releases`` rows: current, else permanent."""
    by_status = {row["status"]: row["vsn"] for row in rows}
    return by_status.get("current") or by_status.get("permanent")
