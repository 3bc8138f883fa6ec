"""The kernel's side of other nodes: remote pids, links, monitors and exits through a channel.

A recording channel stands in for the distribution layer (the wire is tested in
``tests/dist``); each rule of the reference's §1.6 is checked on the kernel's bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.errors import CalleeExited, CallTimeout
from server.kernel import (
    DownMessage,
    ExitMessage,
    Node,
    NodeDownMessage,
    Pid,
    ProcessExit,
    Ref,
    RemoteNode,
    RemoteTag,
)
from tests._support.waits import recv

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

PEER = "peer@host"


@dataclass
class Recording:
    """A channel that records what the kernel sends, in order."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    busy: bool = False

    async def drained(self) -> None:
        self.calls.append(("drained",))
        self.busy = False

    def send(self, sender: Pid | None, to: Pid, message: object) -> None:
        self.calls.append(("send", sender, to, message))

    def send_named(self, sender: Pid | None, name: str, message: object) -> None:
        self.calls.append(("send_named", sender, name, message))

    def reply(self, sender: Pid | None, to: Pid, tag: RemoteTag, value: object) -> None:
        self.calls.append(("reply", to, tag.term, value))

    def link(self, sender: Pid, to: Pid) -> None:
        self.calls.append(("link", sender, to))

    def unlink(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        self.calls.append(("unlink", unlink_id, sender, to))

    def unlink_ack(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        self.calls.append(("unlink_ack", unlink_id, sender, to))

    def exit(self, sender: Pid, to: Pid, reason: object, *, from_link: bool) -> None:
        self.calls.append(("exit", sender, to, reason, from_link))

    def monitor(self, watcher: Pid, target: Pid | str, ref: Ref) -> None:
        self.calls.append(("monitor", watcher, target, ref))

    def demonitor(self, watcher: Pid, target: Pid | str, ref: Ref) -> None:
        self.calls.append(("demonitor", watcher, target, ref))

    def monitor_exit(self, target: Pid | str, watcher: Pid, ref: object, reason: object) -> None:
        self.calls.append(("monitor_exit", target, watcher, ref, reason))

    def last(self) -> tuple[object, ...]:
        return self.calls[-1]

    def kinds(self) -> list[object]:
        return [call[0] for call in self.calls]


@dataclass
class FakeDistribution:
    """The net kernel as the kernel sees it: a name, and the connects it was asked for."""

    name: str = "here@host"
    connects: list[str] = field(default_factory=list)

    def connect(self, node: RemoteNode) -> None:
        self.connects.append(node.name)


def _connected(node: Node, creation: int = 7) -> tuple[RemoteNode, Recording]:
    node.distribution = FakeDistribution()
    remote = node.remote_node(PEER)
    channel = Recording()
    remote.attach(channel, creation, hidden=False)
    return remote, channel


async def _run(node: Node, body: Callable[[], Awaitable[None]]) -> None:
    try:
        await node.run_process(body)
    finally:
        node.distribution = None


async def _sleeper() -> None:
    await kernel.receive(lambda m: False)


async def test_a_remote_pid_is_interned_and_sends_go_to_its_channel(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        pid = remote.pid(5, 0, 7)
        assert remote.pid(5, 0, 7) is pid
        assert repr(pid) == "<peer@host.5.0>"
        assert kernel.node(pid) == PEER
        assert kernel.node() == "here@host"
        kernel.send(pid, "hello")
        kernel.send(("server", PEER), "named")
        assert channel.calls == [
            ("send", kernel.self(), pid, "hello"),
            ("send_named", kernel.self(), "server", "named"),
        ]
        with pytest.raises(ValueError, match="another node"):
            kernel.is_alive(pid)
        assert kernel.nodes() == [PEER]
        assert kernel.nodes("hidden") == []

    await _run(node, body)


async def test_an_exit_over_a_remote_link_follows_the_local_rules(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        pid = remote.pid(5, 0, 7)
        kernel.trap_exit(True)
        kernel.link(pid)
        assert channel.calls == [("link", kernel.self(), pid)]
        remote.incoming_exit(pid, kernel.self(), "boom", from_link=True)
        assert await recv(lambda m: type(m) is ExitMessage, step="EXIT") == ExitMessage(pid, "boom")
        remote.incoming_exit(pid, kernel.self(), "again", from_link=True)  # the link is gone
        assert kernel.flush() == 0

    await _run(node, body)


async def test_a_local_end_goes_out_over_remote_links_and_monitors(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        peer_pid = remote.pid(9, 0, 7)
        local = kernel.spawn(_sleeper)
        remote.incoming_link(peer_pid, local)
        remote.incoming_monitor(peer_pid, local, "their-ref")
        ref = kernel.monitor(local)
        kernel.exit(local, "bye")
        await recv(lambda m: type(m) is DownMessage and m.ref is ref, step="local end")
        assert ("exit", local, peer_pid, "bye", True) in channel.calls
        assert ("monitor_exit", local, peer_pid, "their-ref", "bye") in channel.calls

    await _run(node, body)


async def test_the_unlink_protocol(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        pid = remote.pid(5, 0, 7)
        me = kernel.self()
        kernel.trap_exit(True)
        kernel.link(pid)
        kernel.unlink(pid)
        (unlink_id,) = [call[1] for call in channel.calls if call[0] == "unlink"]
        assert isinstance(unlink_id, int)
        # while the unlink is unacknowledged: a LINK from the peer is ignored, an exit too
        remote.incoming_link(pid, me)
        remote.incoming_exit(pid, me, "ignored", from_link=True)
        info = kernel.process_info(me)
        assert info is not None
        assert pid not in info.links
        # an ACK with another id changes nothing; the right one ends the unlink
        remote.incoming_unlink_ack(unlink_id + 1, pid, me)
        assert remote.unlinking
        remote.incoming_unlink_ack(unlink_id, pid, me)
        assert not remote.unlinking
        # now a LINK from the peer makes a link again, and its exit is acted upon
        remote.incoming_link(pid, me)
        remote.incoming_exit(pid, me, "real", from_link=True)
        assert await recv(lambda m: type(m) is ExitMessage, step="EXIT") == ExitMessage(pid, "real")
        assert kernel.flush() == 0  # the ignored exit never arrived
        # the peer unlinks: the link goes, and the ACK is sent even with no link
        remote.incoming_link(pid, me)
        remote.incoming_unlink(41, pid, me)
        remote.incoming_unlink(42, pid, me)
        assert channel.calls[-2:] == [("unlink_ack", 41, me, pid), ("unlink_ack", 42, me, pid)]
        remote.incoming_exit(pid, me, "after unlink", from_link=True)
        assert kernel.flush() == 0

    await _run(node, body)


async def test_exit2_kills_through_no_link_and_kill_becomes_killed(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        pid = remote.pid(5, 0, 7)
        victim = kernel.spawn(_sleeper)
        ref = kernel.monitor(victim)
        remote.incoming_exit(pid, victim, "kill", from_link=False)
        down = await recv(lambda m: type(m) is DownMessage and m.ref is ref, step="killed")
        assert down.reason == "killed"  # type: ignore[attr-defined]
        kernel.exit(pid, "stop")
        assert channel.last() == ("exit", kernel.self(), pid, "stop", False)

    await _run(node, body)


async def test_monitors_of_remote_processes_and_names(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        pid = remote.pid(5, 0, 7)
        me = kernel.self()
        ref = kernel.monitor(pid)
        assert channel.last() == ("monitor", me, pid, ref)
        info = kernel.process_info(me)
        assert info is not None
        assert pid in info.monitors
        remote.incoming_monitor_exit(pid, me, ref, "gone")
        assert await recv(lambda m: type(m) is DownMessage, step="DOWN") == DownMessage(
            ref, pid, "gone"
        )
        named = kernel.monitor(("store", PEER))
        assert channel.last() == ("monitor", me, "store", named)
        assert kernel.demonitor(named) is True
        assert channel.last() == ("demonitor", me, "store", named)
        remote.incoming_monitor_exit("store", me, named, "late")  # demonitored: dropped
        assert kernel.flush() == 0

    await _run(node, body)


async def test_remote_watchers_of_local_names_get_noproc_at_once(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        watcher = remote.pid(3, 0, 7)
        remote.incoming_monitor(watcher, "nosuch", "r1")
        assert channel.last() == ("monitor_exit", "nosuch", watcher, "r1", "noproc")
        local = kernel.spawn(_sleeper)
        kernel.register("svc", local)
        remote.incoming_monitor(watcher, "svc", "r2")
        remote.incoming_demonitor("r2")
        remote.incoming_monitor(watcher, "svc", "r3")
        ref = kernel.monitor(local)
        kernel.exit(local, "done")
        await recv(lambda m: type(m) is DownMessage and m.ref is ref, step="svc ends")
        exits = [call for call in channel.calls if call[0] == "monitor_exit"]
        assert exits[1:] == [("monitor_exit", "svc", watcher, "r3", "done")]  # by name, once
        remote.incoming_link(watcher, local)  # dead now
        assert channel.last() == ("exit", local, watcher, "noproc", True)

    await _run(node, body)


async def test_a_lost_connection_fires_noconnection_everywhere(node: Node) -> None:
    async def body() -> None:
        remote, _channel = _connected(node)
        pid = remote.pid(5, 0, 7)
        me = kernel.self()
        kernel.trap_exit(True)
        kernel.link(pid)
        ref = kernel.monitor(pid)
        kernel.monitor_node(PEER)
        bystander = kernel.spawn(_sleeper)
        watch = kernel.monitor(bystander)
        kernel.send(bystander, ("link", pid))  # ignored by the sleeper: it just lives
        local = kernel.spawn(_sleeper)
        remote.incoming_monitor(remote.pid(6, 0, 7), local, "theirs")
        remote.connection_lost()
        exited = await recv(lambda m: type(m) is ExitMessage, step="EXIT")
        down = await recv(lambda m: type(m) is DownMessage and m.ref is ref, step="DOWN")
        nodedown = await recv(lambda m: type(m) is NodeDownMessage, step="nodedown")
        assert exited == ExitMessage(pid, "noconnection")
        assert down == DownMessage(ref, pid, "noconnection")
        assert nodedown == NodeDownMessage(PEER)
        assert not remote.connected
        assert kernel.nodes("connected") == []
        info = kernel.process_info(local)
        assert info is not None
        assert info.monitored_by == 0
        kernel.exit(bystander, "kill")
        await recv(lambda m: type(m) is DownMessage and m.ref is watch, step="bystander")
        assert me is kernel.self()

    await _run(node, body)


async def test_signals_wait_for_the_connection_in_order(node: Node) -> None:
    async def body() -> None:
        distribution = FakeDistribution()
        node.distribution = distribution
        remote = node.remote_node(PEER)
        pid = remote.pid(5, 0, 7)
        kernel.send(pid, "one")
        ref = kernel.monitor(pid)
        kernel.send(("svc", PEER), "two")
        assert distribution.connects == [PEER]  # one connect for all of them
        assert not remote.connected
        channel = Recording()
        remote.attach(channel, 7, hidden=True)
        assert channel.kinds() == ["send", "monitor", "send_named"]
        assert channel.calls[1] == ("monitor", kernel.self(), pid, ref)
        assert kernel.nodes("hidden") == [PEER]

    await _run(node, body)


async def test_a_connection_that_cannot_be_made_fires_noconnection(node: Node) -> None:
    async def body() -> None:
        node.distribution = FakeDistribution()
        remote = node.remote_node(PEER)
        pid = remote.pid(5, 0, 7)
        kernel.trap_exit(True)
        kernel.link(pid)
        ref = kernel.monitor(pid)
        remote.connection_lost()  # what the net kernel does when the dial fails
        assert await recv(lambda m: type(m) is ExitMessage, step="EXIT") == ExitMessage(
            pid, "noconnection"
        )
        down = await recv(lambda m: type(m) is DownMessage, step="DOWN")
        assert down == DownMessage(ref, pid, "noconnection")

    await _run(node, body)


async def test_pids_of_an_earlier_incarnation_are_gone(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node, creation=8)
        old = remote.pid(5, 0, 7)
        kernel.send(old, "dropped")
        ref = kernel.monitor(old)
        down = await recv(lambda m: type(m) is DownMessage, step="DOWN")
        assert down == DownMessage(ref, old, "noproc")
        kernel.trap_exit(True)
        kernel.link(old)
        assert await recv(lambda m: type(m) is ExitMessage, step="EXIT") == ExitMessage(
            old, "noproc"
        )
        assert channel.calls == []

    await _run(node, body)


async def test_a_call_to_a_remote_process(node: Node) -> None:
    async def body() -> None:
        from server.kernel import From

        remote, channel = _connected(node)
        pid = remote.pid(5, 0, 7)

        me = kernel.self()
        task_ref: list[Ref] = []

        def on_send(from_: From) -> object:
            assert isinstance(from_.ref, Ref)
            task_ref.append(from_.ref)
            return ("q", from_)

        async def reply_soon() -> None:
            await recv(lambda m: m == "go", step="go")
            remote.incoming_reply(task_ref[0], "answer")

        # the reply arrives: the monitor ends with it, the call returns the value
        helper = kernel.spawn(reply_soon)
        kernel.send(helper, "go")
        assert await kernel.request(pid, on_send, 5.0) == "answer"
        kinds = channel.kinds()
        assert kinds[:2] == ["monitor", "send"]
        assert kinds[-1] == "demonitor"
        # a reply after the timeout is no reply: dropped
        with pytest.raises(CallTimeout):
            await kernel.request(pid, on_send, 0.05)
        assert remote.incoming_reply(task_ref[-1], "late") is False
        assert kernel.flush() == 0

        # the remote process ends before replying: the call fails with its reason
        async def down_soon() -> None:
            await recv(lambda m: m == "go", step="go")
            remote.incoming_monitor_exit(pid, me, task_ref[-1], "crashed")

        helper = kernel.spawn(down_soon)
        kernel.send(helper, "go")
        with pytest.raises(CalleeExited) as caught:
            await kernel.request(pid, on_send, 5.0)
        assert caught.value.reason == "crashed"

    await _run(node, body)


async def test_a_reply_to_a_remote_caller_goes_through_the_channel(node: Node) -> None:
    async def body() -> None:
        from server.kernel import From

        remote, channel = _connected(node)
        caller = remote.pid(5, 0, 7)
        kernel.reply(From(caller, RemoteTag("their-tag")), {"value": 1})
        assert channel.calls == [("reply", caller, "their-tag", {"value": 1})]

    await _run(node, body)


async def test_wait_ended_and_register_refuse_remote_pids(node: Node) -> None:
    async def body() -> None:
        remote, _ = _connected(node)
        pid = remote.pid(5, 0, 7)
        with pytest.raises(ValueError, match="another node"):
            await kernel.wait_ended([pid])
        with pytest.raises(kernel_registration_error()):
            kernel.register("x", pid)
        assert kernel.process_info(pid) is None
        with pytest.raises(ProcessExit):
            raise ProcessExit("normal")

    await _run(node, body)


def kernel_registration_error() -> type[Exception]:
    from server.errors import RegistrationError

    return RegistrationError


async def test_a_call_waits_for_a_busy_connection_to_drain(node: Node) -> None:
    async def body() -> None:
        remote, channel = _connected(node)
        pid = remote.pid(5, 0, 7)
        channel.busy = True
        with pytest.raises(CallTimeout):
            await kernel.request(pid, lambda from_: ("q", from_), 0.01)
        assert channel.kinds()[:3] == ["monitor", "drained", "send"]

    await _run(node, body)
