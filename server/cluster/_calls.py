"""Ask the release agents of several nodes at once, each from a process of its own.

A call needs its caller's mailbox to itself (two calls waiting in one process would take
each other's replies), so ``ask`` spawns one process per node; each calls that node's
``release_agent`` (the local one by its name) and sends its ``Answer`` back tagged. Every
call ends: with the agent's answer, or with the error that ended it (``noconnection`` when
the node is lost, ``noproc`` when it runs no agent, a timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from server import kernel
from server.behaviours import gen_server
from server.cluster._agent import AGENT
from server.errors import CalleeExited, CallError, CallTimeout

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Answer", "ask", "ask_one"]


@final
@dataclass(frozen=True, slots=True)
class Answer:
    """One node's answer: ``value`` when ``ok``, else the error's ``kind`` and ``error`` text.

    ``kind`` is the error class the agent named (``InstallRefused``...), or ``noconnection``
    / ``noproc`` / ``timeout`` when the call itself failed.
    """

    node: str
    ok: bool
    value: object = None
    kind: str = ""
    error: str = ""

    @property
    def lost(self) -> bool:
        """The node was lost (or could not be reached) during the call."""
        return self.kind == "noconnection"


async def ask_one(node: str, request: object, *, timeout: float) -> Answer:
    """``node``'s release agent's answer to ``request`` (this node's own agent when local)."""
    target: str | tuple[str, str] = AGENT if node == kernel.node() else (AGENT, node)
    try:
        answer = await gen_server.call(target, request, timeout=timeout)
    except CallTimeout as exc:
        return Answer(node, False, kind="timeout", error=f"no answer within {exc.timeout:g} s")
    except CalleeExited as exc:
        kind = str(exc.reason) if str(exc.reason) in ("noconnection", "noproc") else "exited"
        why = {
            "noconnection": "node lost (noconnection)",
            "noproc": "no release agent runs there (noproc)",
        }.get(kind, f"the release agent exited with {exc.reason!r}")
        return Answer(node, False, kind=kind, error=why)
    except CallError as exc:
        return Answer(node, False, kind=type(exc).__name__, error=str(exc)[:300])
    match answer:
        case ("ok", value):
            return Answer(node, True, value)
        case ("error", kind, text):
            return Answer(node, False, kind=str(kind), error=str(text))
    return Answer(node, False, kind="unexpected", error=f"unexpected answer {answer!r}"[:300])


async def ask(
    requests: Mapping[str, object],
    *,
    timeout: float,
    on_answer: Callable[[Answer], None] | None = None,
) -> dict[str, Answer]:
    """Every node's answer to its request, asked at once; ``on_answer`` sees each as it comes."""
    me = kernel.self()
    tag = kernel.Ref()

    async def one(node: str, request: object) -> None:
        try:
            answer = await ask_one(node, request, timeout=timeout)
        except Exception as exc:
            answer = Answer(node, False, kind="crashed", error=f"{type(exc).__name__}: {exc}")
        kernel.send(me, (tag, answer))

    for node, request in requests.items():
        kernel.spawn(one, node, request)
    answers: dict[str, Answer] = {}
    while len(answers) < len(requests):
        message = await kernel.receive(lambda m: type(m) is tuple and len(m) == 2 and m[0] is tag)
        answer: Answer = message[1]  # type: ignore[index]
        answers[answer.node] = answer
        if on_answer is not None:
            on_answer(answer)
    return {node: answers[node] for node in requests}
