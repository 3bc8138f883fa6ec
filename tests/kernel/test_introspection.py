"""processes, process_info and labels: what tools see of a process."""

from __future__ import annotations

from dataclasses import replace

import anyio

from server import kernel
from server.behaviours import gen_server
from server.kernel import Node, ProcessInfo

from ._helpers import down, idle, recv, start_peer


async def test_processes_lists_the_live_processes_in_spawn_order(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        a = kernel.spawn(idle)
        b, ref = kernel.spawn_monitor(idle)
        c = kernel.spawn(idle)
        assert kernel.processes() == [me, a, b, c]
        kernel.exit(b, "kill")
        assert kernel.processes() == [me, a, c], "a doomed process is already gone"
        await down(ref)
        assert kernel.processes() == [me, a, c]

    await node.run_process(body)


async def test_process_info_describes_a_process(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        pid = await start_peer(trap=True, link=True)
        kernel.register("svc", pid)
        kernel.monitor(pid)
        kernel.monitor(pid)
        kernel.send(pid, "unknown 1")
        kernel.send(pid, "unknown 2")
        kernel.send(pid, ("ping", me))
        await recv(step="pong")
        described = kernel.process_info(pid)
        assert described is not None
        assert described.messages_delivered == 3
        assert replace(described, messages_delivered=0, spawned_at=0.0) == ProcessInfo(
            pid=pid,
            registered_name="svc",
            message_queue_len=0,  # the peer took (and ignored) the unknown messages
            links=(me,),
            monitored_by=2,
            trap_exit=True,
            monitors=(),
            labels=(),
        )
        watcher_info = kernel.process_info(me)
        assert watcher_info is not None
        assert watcher_info.monitors == (pid, pid)
        idler = kernel.spawn(idle)
        kernel.send(idler, "waits")
        info = kernel.process_info(idler)
        assert info is not None
        assert info.message_queue_len == 1

    await node.run_process(body)


async def test_process_info_counts_deliveries_and_knows_when_it_was_spawned(node: Node) -> None:
    async def body() -> None:
        before = anyio.current_time()
        idler = kernel.spawn(idle)
        for n in range(5):
            kernel.send(idler, n)
        info = kernel.process_info(idler)
        assert info is not None
        assert (info.messages_delivered, info.message_queue_len) == (5, 5)
        assert before <= info.spawned_at <= anyio.current_time()
        peer = await start_peer()
        kernel.send(peer, ("ping", kernel.self()))
        await recv(step="pong")
        served = kernel.process_info(peer)
        assert served is not None
        assert (served.messages_delivered, served.message_queue_len) == (1, 0)

    await node.run_process(body)


async def test_process_info_of_a_dead_or_doomed_process_is_none(node: Node) -> None:
    async def body() -> None:
        pid, ref = kernel.spawn_monitor(idle)
        kernel.exit(pid, "kill")
        assert kernel.process_info(pid) is None
        await down(ref)
        assert kernel.process_info(pid) is None

    await node.run_process(body)


async def test_labels_are_shown_except_private_ones(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        kernel.set_label("behaviour", "worker")
        kernel.set_label("_private", 1)
        assert kernel.get_label(me, "behaviour") == "worker"
        assert kernel.get_label(me, "_private") == 1
        assert kernel.get_label(me, "missing", "default") == "default"
        info = kernel.process_info(me)
        assert info is not None
        assert info.labels == (("behaviour", "worker"),)

    await node.run_process(body)


async def test_the_kernel_own_bookkeeping_is_not_shown_as_labels(node: Node) -> None:
    async def body() -> None:
        info = kernel.process_info(kernel.self())  # a run_process process has an exit hook
        assert info is not None
        assert info.labels == ()

    await node.run_process(body)


async def test_labels_of_a_dead_process_give_the_default(node: Node) -> None:
    async def labelled() -> None:
        kernel.set_label("k", "v")

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(labelled)
        await down(ref)
        assert kernel.get_label(pid, "k", "gone") == "gone"

    await node.run_process(body)


async def test_a_call_counts_as_delivered_to_the_server_and_its_reply_to_the_caller(
    node: Node,
) -> None:
    """The call path's inlined deliveries (a server parked for anything, a caller parked
    for its answer) count as ``deliver`` does."""

    async def body() -> None:
        server = await gen_server.start("tests.behaviours.callbacks.counter", 0)
        assert server is not None
        for _ in range(3):
            await gen_server.call(server, "get")
        served = kernel.process_info(server)
        caller = kernel.process_info(kernel.self())
        assert served is not None
        assert caller is not None
        assert served.messages_delivered == 3
        assert caller.messages_delivered >= 3  # the replies (and the start's acknowledgement)

    await node.run_process(body)
