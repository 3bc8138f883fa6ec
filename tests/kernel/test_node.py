"""The node: one at a time, kills its processes on exit; ``run``; calls outside a process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from server import kernel
from server.errors import NoProcessError, ProcessError
from server.kernel import Node, Pid, Ref

from ._helpers import idle, recv

if TYPE_CHECKING:
    from collections.abc import Callable


async def _cleans_up(log: list[str], name: str, tester: Pid | None = None) -> None:
    try:
        if tester is not None:
            kernel.send(tester, "started")
        await kernel.receive(lambda m: m == "never sent")
    finally:
        await anyio.lowlevel.checkpoint()  # cleanup that waits is waited for
        log.append(name)


async def test_the_node_kills_every_process_when_it_exits() -> None:
    log: list[str] = []

    async def trapper(tester: Pid) -> None:
        kernel.trap_exit(True)
        await _cleans_up(log, "trapper", tester)

    async def starter() -> None:
        me = kernel.self()
        for i in range(20):
            kernel.spawn(_cleans_up, log, f"p{i}", me)
        kernel.spawn(trapper, me)
        for i in range(21):
            await recv(lambda m: m == "started", step=f"process {i} started")

    async with Node(name="scratch") as scratch:
        await scratch.run_process(starter)
    assert sorted(log) == sorted([f"p{i}" for i in range(20)] + ["trapper"])
    assert scratch.processes == {}
    assert scratch.registry == {}


async def test_only_one_node_runs_at_a_time(node: Node) -> None:
    assert kernel.current_node() is node
    with pytest.raises(ProcessError, match="already running"):
        async with Node(name="second"):
            pass
    assert kernel.current_node() is node


async def test_no_node_outside_a_running_node() -> None:
    with pytest.raises(ProcessError):
        kernel.current_node()
    async with Node(name="scratch") as scratch:
        assert kernel.current_node() is scratch
    with pytest.raises(ProcessError):
        kernel.current_node()


# -- run ----------------------------------------------------------------------------------------


def test_run_returns_the_result_of_main() -> None:
    async def main(a: int, b: int) -> int:
        return a + b

    assert kernel.run(main, 40, 2) == 42


def test_run_raises_the_exception_of_main(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        raise ValueError("main failed")

    with pytest.raises(ValueError, match="main failed"):
        kernel.run(main)


def test_run_stops_the_processes_main_left_behind() -> None:
    log: list[str] = []

    async def main() -> str:
        kernel.spawn(_cleans_up, log, "left behind", kernel.self())
        await recv(lambda m: m == "started", step="started")
        return "done"

    assert kernel.run(main) == "done"
    assert log == ["left behind"]


def test_main_runs_as_a_process() -> None:
    async def main() -> Pid:
        me = kernel.self()
        kernel.send(me, "to myself")
        assert await recv(step="own message") == "to myself"
        return me

    assert isinstance(kernel.run(main), Pid)


# -- process-only calls from outside a process ----------------------------------------------------

OUTSIDE: dict[str, Callable[[Pid], object]] = {
    "self": lambda _: kernel.self(),
    "receive": lambda _: kernel.receive(),
    "receive_nowait": lambda _: kernel.receive_nowait(),
    "flush": lambda _: kernel.flush(),
    "spawn_link": lambda _: kernel.spawn_link(idle),
    "spawn_monitor": lambda _: kernel.spawn_monitor(idle),
    "link": lambda pid: kernel.link(pid),
    "unlink": lambda pid: kernel.unlink(pid),
    "trap_exit": lambda _: kernel.trap_exit(True),
    "monitor": lambda pid: kernel.monitor(pid),
    "demonitor": lambda _: kernel.demonitor(Ref()),
    "set_label": lambda _: kernel.set_label("key", "value"),
}


@pytest.mark.parametrize("call", OUTSIDE.values(), ids=OUTSIDE.keys())
async def test_process_only_calls_outside_a_process_raise_no_process_error(
    node: Node, call: Callable[[Pid], object]
) -> None:
    pid = kernel.spawn(idle)
    before = dict(node.processes)
    with pytest.raises(NoProcessError):
        call(pid)
    assert node.processes == before, "nothing was spawned"
    info = kernel.process_info(pid)
    assert info is not None
    assert info.links == ()
    assert info.monitored_by == 0


# -- wait_ended -----------------------------------------------------------------------------------


async def test_wait_ended_waits_until_every_process_has_ended(node: Node) -> None:
    pids = [kernel.spawn(idle) for _ in range(3)]
    kernel.spawn(idle)  # not waited for
    await kernel.wait_ended([])  # nothing to wait for
    for pid in pids:
        kernel.exit(pid, "kill")
    with anyio.fail_after(2):
        await kernel.wait_ended(pids)
    assert not any(pid.number in node.processes for pid in pids)
    with anyio.fail_after(2):
        await kernel.wait_ended(pids)  # already ended: returns at once
