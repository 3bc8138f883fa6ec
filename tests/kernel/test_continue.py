"""Continue(target, *args): the kernel drops the returning stack and calls target afresh."""

from __future__ import annotations

import weakref

import pytest

from server import kernel
from server.kernel import Continue, DownMessage, Node, Pid

from ._helpers import down, recv


class _Marker:
    """An object only the first stage's frame refers to."""


def frame_names(pid: Pid) -> list[str]:
    return [frame.f_code.co_name for frame in kernel.process_frames(pid)]


async def _second(tester: Pid, *args: object) -> None:
    kernel.send(tester, ("second", kernel.self(), args))
    await kernel.receive(lambda m: m == "stop")


async def _first(tester: Pid) -> Continue:
    marker = _Marker()
    kernel.send(tester, ("marker", weakref.ref(marker)))
    await kernel.receive(lambda m: m == "go on")
    return Continue(_second, tester, 1, "two")


async def test_continue_calls_the_target_with_its_arguments(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(_first, kernel.self())
        kernel.send(pid, "go on")
        message = await recv(lambda m: type(m) is tuple and m[0] == "second", step="second")
        assert message == ("second", pid, (1, "two")), "same pid, the given arguments"

    await node.run_process(body)


async def test_continue_drops_the_old_stack(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(_first, kernel.self())
        message = await recv(step="marker")
        assert type(message) is tuple
        alive = message[1]
        assert isinstance(alive, weakref.ref)
        assert alive() is not None
        assert frame_names(pid) == ["_first"]
        kernel.send(pid, "go on")
        await recv(lambda m: type(m) is tuple and m[0] == "second", step="second")
        assert frame_names(pid) == ["_second"], "the first stage's frame is gone"
        assert alive() is None, "and so is everything it held"

    await node.run_process(body)


async def test_the_mailbox_links_and_monitors_survive_a_continue(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        pid = kernel.spawn_link(_first, kernel.self())
        ref = kernel.monitor(pid)
        kernel.send(pid, "queued early")
        kernel.send(pid, "go on")
        await recv(lambda m: type(m) is tuple and m[0] == "second", step="second")
        info = kernel.process_info(pid)
        assert info is not None
        assert info.message_queue_len == 1, "the early message is still queued"
        assert info.links == (kernel.self(),)
        assert info.monitored_by == 1
        kernel.send(pid, "stop")
        assert await down(ref) == DownMessage(ref, pid, "normal")

    await node.run_process(body)


async def _countdown(tester: Pid, n: int) -> Continue | None:
    if n == 0:
        kernel.send(tester, "done")
        await kernel.receive()
        return None
    return Continue(_countdown, tester, n - 1)


async def test_many_continues_do_not_grow_the_stack(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(_countdown, kernel.self(), 3000)
        await recv(step="countdown done")
        assert frame_names(pid) == ["_countdown"]

    await node.run_process(body)


def _not_async() -> int:
    return 42


async def _continue_to(target: object) -> Continue:
    return Continue(target)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "error"),
    [(_not_async, TypeError), (lambda: 1 // 0, ZeroDivisionError)],
    ids=["not-async", "raises-when-called"],
)
async def test_a_continue_to_a_bad_target_crashes_the_process(
    node: Node, caplog: pytest.LogCaptureFixture, target: object, error: type[Exception]
) -> None:
    async def body() -> None:
        _, ref = kernel.spawn_monitor(_continue_to, target)
        assert isinstance((await down(ref)).reason, error)

    await node.run_process(body)
    assert any(getattr(r, "report", None) == "crash_report" for r in caplog.records)
