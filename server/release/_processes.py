"""Finding the processes that use a module: a walk of the running applications' trees.

As OTP's release handler does: for every running application, its top supervisor (using
its own callback module) and every child below it, at any depth (an explicit stack, as
every tree walk of the release code), with the ``modules`` of its child spec. A process
outside every supervision tree, or with a wrong ``modules`` list, is never found, so it is
never suspended nor migrated: the child spec is the contract.

A child spec's ``modules="dynamic"`` means "ask the process": an event manager
(``gen_event``) answers ``get_modules`` with the modules of the handlers it holds at that
moment, as OTP's release handler asks. Any other process with dynamic modules counts as
using none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from anyio.lowlevel import checkpoint

from server import kernel
from server.app import controller
from server.behaviours import gen_event, supervisor
from server.errors import CallError
from server.kernel import Pid

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from server.behaviours.supervisor import ChildInfo

__all__ = ["Using", "processes_using", "supervised_processes"]

# rows of one supervisor turned into records between two turns of the event loop: a
# simple_one_for_one supervisor of 100,000 children would otherwise hold it ~0.5 s
# (5,000 rows a turn held it 20-30 ms)
ROWS_PER_TURN = 500


@final
@dataclass(frozen=True, slots=True)
class Using:
    """One supervised process and the modules its child spec names."""

    pid: Pid
    application: str
    supervisor: Pid | None
    child_id: str | None
    modules: tuple[str, ...]
    is_supervisor: bool
    dynamic: bool = False  # an event manager: its state is one HandlerState per handler


async def supervised_processes() -> list[Using]:
    """Every process of every running application's supervision tree, tops first."""
    found: list[Using] = []
    for application, top in (await controller.top_supervisors()).items():
        try:
            # a supervisor runs the generic engine; what is upgraded is its callback module
            module = await supervisor.get_callback_module(top)
        except CallError:
            continue  # ending right now: nothing to upgrade in it
        found.append(Using(top, application, None, None, (module,), True))
        await _walk(application, top, found)
    return found


async def _walk(application: str, top: Pid, found: list[Using]) -> None:
    """Every process under ``top``, depth first in start order, with an explicit stack."""
    stack: list[tuple[Pid, Iterator[tuple[int, ChildInfo]]]] = []

    async def enter(sup: Pid) -> None:
        try:
            rows = await supervisor.which_children(sup)
        except CallError:
            return
        stack.append((sup, enumerate(rows)))

    await enter(top)
    while stack:
        sup, rows = stack[-1]
        item = next(rows, None)
        if item is None:
            stack.pop()
            continue
        index, row = item
        if index and not index % ROWS_PER_TURN:
            await checkpoint()
        if not isinstance(row.pid, Pid):
            continue  # not running, or restarting
        dynamic = row.modules == "dynamic"
        modules = await _dynamic_modules(row.pid) if dynamic else tuple(row.modules)
        is_sup = row.type == "supervisor"
        found.append(Using(row.pid, application, sup, row.id, modules, is_sup, dynamic))
        if is_sup:
            await enter(row.pid)


async def _dynamic_modules(pid: Pid) -> tuple[str, ...]:
    """The handler modules an event manager holds (OTP's ``get_modules``); else none."""
    if kernel.get_label(pid, "behaviour") != gen_event.BEHAVIOUR:
        return ()
    try:
        return tuple(await gen_event.get_modules(pid))
    except CallError:
        return ()  # ending right now: nothing to upgrade in it


def processes_using(processes: Iterable[Using], module: str) -> list[Using]:
    """The processes whose child spec names ``module`` (each pid once, walk order)."""
    seen: set[Pid] = set()
    using: list[Using] = []
    for process in processes:
        if module in process.modules and process.pid not in seen:
            seen.add(process.pid)
            using.append(process)
    return using
