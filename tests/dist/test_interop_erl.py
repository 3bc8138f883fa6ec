"""This node and a real Erlang node in one cluster: every rule checked against ``erl``.

The Python node runs in the test process (``node`` fixture, distributed as
``py@localhost``); the Erlang node is a real ``erl`` driven like a shell
(``tests._support.erl_shell``); both use the test's own EPMD on a free loopback port.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest

from server import dist, kernel
from server.behaviours import gen_server
from server.dist import Atom
from server.errors import CalleeExited, CallTimeout, RpcError
from server.kernel import DownMessage, ExitMessage, Node, Pid
from tests._support.erl_shell import ErlShell, running_erl_shell
from tests._support.waits import recv, step
from tests.dist.conftest import COOKIE, distributed, settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests._support.erl_nodes import Epmd

pytestmark = pytest.mark.timeout(120)

PY = "py@localhost"


@asynccontextmanager
async def _py_and_erl(epmd: Epmd, tmp_path: Path) -> AsyncIterator[ErlShell]:
    """This node distributed as ``py@localhost`` and a real ``e1@localhost``, same cookie."""
    async with (
        distributed(settings(epmd)),
        running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path) as erl,
    ):
        yield erl


async def _echo_server() -> Pid:
    pid = await gen_server.start("tests.dist._targets", None, name="echo")
    assert pid is not None
    return pid


async def test_ping_both_ways(node: Node, epmd: Epmd, tmp_path: Path) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
            assert await erl.eval("nodes(hidden)") == f"[{PY}]"
            assert kernel.nodes("visible") == ["e1@localhost"]
            assert await dist.ping("e1@localhost") is True

    await node.run_process(body)


async def test_wrong_cookie_is_refused_both_ways(node: Node, epmd: Epmd, tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            distributed(settings(epmd)),
            running_erl_shell("e1", epmd=epmd, cookie="another-cookie", home=tmp_path) as erl,
        ):
            assert await erl.eval(f"net_adm:ping('{PY}')") == "pang"
            with step("ping with the wrong cookie"):
                assert await dist.ping("e1@localhost") is False
            assert kernel.nodes("connected") == []

    await node.run_process(body)


async def test_gen_server_calls_both_ways(node: Node, epmd: Epmd, tmp_path: Path) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            await _echo_server()
            request = '{hello, <<"world">>, 42, 3.5, [1, a], #{k => v}}'
            answer = await erl.eval(f"gen_server:call({{echo, '{PY}'}}, {request})")
            assert answer == '{echo,{hello,<<"world">>,42,3.5,[1,a],#{k => v}}}'
            with step("call erl's rex"):
                reply = await gen_server.call(
                    ("rex", "e1@localhost"),
                    (Atom("call"), Atom("lists"), Atom("reverse"), [[1, 2, 3]], kernel.self()),
                )
            assert reply == [3, 2, 1]
            with step("rpc to erl"):
                assert await dist.rpc_call("e1@localhost", "erlang", "node") == "e1@localhost"
                assert await dist.rpc_call("e1@localhost", "lists", "seq", [1, 4]) == [1, 2, 3, 4]
            with pytest.raises(RpcError):
                await dist.rpc_call("e1@localhost", "nosuch_module", "f")
            rex = await dist.rpc_call("e1@localhost", "erlang", "whereis", [Atom("rex")])
            assert isinstance(rex, Pid)
            with step("call erl's rex by its pid"):
                reply = await gen_server.call(
                    rex, (Atom("call"), Atom("erlang"), Atom("length"), [[1, 2]], kernel.self())
                )
            assert reply == 2

    await node.run_process(body)


async def test_calls_to_a_missing_name_fail_at_once_with_noproc(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            answer = await erl.eval(
                f"catch gen_server:call({{nosuch, '{PY}'}}, hello, 60000)", limit=10
            )
            assert answer.startswith("{'EXIT',{noproc,")
            with step("call a missing erl name"), pytest.raises(CalleeExited) as caught:
                await gen_server.call(("nosuch", "e1@localhost"), "hello", timeout=60)
            assert caught.value.reason == "noproc"

    await node.run_process(body)


E1 = "e1@localhost"
#: An erl process registered as ``victim``: ``{exit, R}`` ends it, ``{ping, From}`` answers.
VICTIM = (
    "register(victim, spawn(fun() -> Loop = fun L() -> receive {exit, R} -> exit(R); "
    "{ping, From} -> From ! pong, L() end end, Loop() end))"
)


async def _erl_victim(erl: ErlShell) -> Pid:
    await erl.eval(VICTIM)
    with step("whereis victim"):
        pid = await dist.rpc_call(E1, "erlang", "whereis", [Atom("victim")])
    assert isinstance(pid, Pid)
    assert kernel.node(pid) == E1
    return pid


async def _py_victim(name: str = "pyvictim", *, trap: bool = False) -> Pid:
    from tests.dist._targets import victim

    pid = kernel.spawn(victim, kernel.self(), trap)
    message = await recv(lambda m: m == ("victim", pid), step="victim ready")
    assert message == ("victim", pid)
    kernel.register(name, pid)
    return pid


async def _erl_binds_p(erl: ErlShell) -> None:
    """The erl shell asks ``pyvictim`` for its pid and binds it to ``P``."""
    await erl.eval(f"{{pyvictim, '{PY}'}} ! {{whoami, self()}}")
    await erl.eval("P = receive {pid, X} -> X after 5000 -> timeout end")


async def _synced(pid: Pid) -> None:
    """Everything sent to the erl victim before has been handled (its answer comes after)."""
    kernel.send(pid, (Atom("ping"), kernel.self()))
    await recv(lambda m: m == "pong", step="victim pong")


@pytest.mark.parametrize(
    ("how", "expected"), [("exit", "boom"), ("kill", "killed"), ("exit_normal", None)]
)
async def test_a_link_to_an_erlang_process_carries_its_exit_reason(
    node: Node, epmd: Epmd, tmp_path: Path, how: str, expected: str | None
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            pid = await _erl_victim(erl)
            kernel.trap_exit(True)
            kernel.link(pid)
            await _synced(pid)
            if how == "kill":
                await erl.eval("exit(whereis(victim), kill)")
            else:
                reason = "boom" if how == "exit" else "normal"
                kernel.send(pid, (Atom("exit"), Atom(reason)))
            message = await recv(lambda m: type(m) is ExitMessage, step="EXIT from erl")
            assert message == ExitMessage(pid, expected or "normal")
            assert isinstance(message.reason, Atom)

    await node.run_process(body)


@pytest.mark.parametrize(("how", "expected"), [("exit", "bye"), ("kill", "killed")])
async def test_an_erlang_process_linked_to_ours_gets_its_exit_reason(
    node: Node, epmd: Epmd, tmp_path: Path, how: str, expected: str
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            await _py_victim()
            await erl.eval("process_flag(trap_exit, true)")
            await _erl_binds_p(erl)
            await erl.eval("link(P)")
            if how == "kill":
                await erl.eval("exit(P, kill)")
            else:
                await erl.eval("P ! {exit, bye}")
            answer = await erl.eval("receive {'EXIT', P, R} -> R after 5000 -> timeout end")
            assert answer == expected

    await node.run_process(body)


async def test_an_erlang_link_to_a_dead_python_pid_gets_noproc(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            pid = await _py_victim()
            await _erl_binds_p(erl)
            ref = kernel.monitor(pid)
            kernel.send(pid, ("exit", "normal"))
            await recv(lambda m: type(m) is DownMessage and m.ref is ref, step="victim ends")
            await erl.eval("process_flag(trap_exit, true), link(P)")
            answer = await erl.eval("receive {'EXIT', P, R} -> R after 5000 -> timeout end")
            assert answer == "noproc"

    await node.run_process(body)


async def test_monitors_both_ways_by_pid_and_by_name(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            # Python watches erl: by pid, then by name
            pid = await _erl_victim(erl)
            ref = kernel.monitor(pid)
            kernel.send(pid, (Atom("exit"), Atom("boom")))
            down = await recv(lambda m: type(m) is DownMessage, step="DOWN by pid")
            assert down == DownMessage(ref, pid, "boom")
            await erl.eval(VICTIM)
            ref = kernel.monitor(("victim", E1))
            # the shell's message comes from another sender: let the monitor arrive first
            await dist.rpc_call(E1, "erlang", "node")
            await erl.eval("victim ! {exit, {shutdown, later}}")
            down = await recv(lambda m: type(m) is DownMessage, step="DOWN by name")
            assert down == DownMessage(ref, ("victim", E1), ("shutdown", "later"))
            ref = kernel.monitor(("nosuch", E1))
            down = await recv(lambda m: type(m) is DownMessage, step="DOWN noproc")
            assert isinstance(down, DownMessage)
            assert down.reason == "noproc"
            # erl watches Python: by name, then by pid
            await _py_victim()
            await erl.eval(f"R1 = erlang:monitor(process, {{pyvictim, '{PY}'}})")
            await erl.eval(f"{{pyvictim, '{PY}'}} ! {{exit, bye}}")
            answer = await erl.eval(
                "receive {'DOWN', R1, process, O, W} -> {O, W} after 5000 -> timeout end"
            )
            assert answer == f"{{{{pyvictim,{PY}}},bye}}"
            await _py_victim()
            await _erl_binds_p(erl)
            await erl.eval("R2 = erlang:monitor(process, P), exit(P, kill)")
            answer = await erl.eval(
                "receive {'DOWN', R2, process, P, W2} -> W2 after 5000 -> timeout end"
            )
            assert answer == "killed"
            answer = await erl.eval(
                f"R3 = erlang:monitor(process, {{nosuch, '{PY}'}}), "
                "receive {'DOWN', R3, _, _, W3} -> W3 after 5000 -> timeout end"
            )
            assert answer == "noproc"

    await node.run_process(body)


async def test_unlinked_before_the_exit_no_exit_arrives_either_way(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            pid = await _erl_victim(erl)
            kernel.trap_exit(True)
            ref = kernel.monitor(pid)
            kernel.link(pid)
            kernel.unlink(pid)
            kernel.send(pid, (Atom("exit"), Atom("boom")))  # right behind the UNLINK_ID
            await recv(lambda m: type(m) is DownMessage and m.ref is ref, step="victim ends")
            await dist.rpc_call(E1, "erlang", "node")  # what erl sent before has arrived
            assert kernel.flush(lambda m: type(m) is ExitMessage) == 0
            info = kernel.process_info(kernel.self())
            assert info is not None
            assert [p for p in info.links if kernel.node(p) != PY] == []
            # and the other way: erl links, unlinks, then the Python process exits
            await _py_victim()
            await erl.eval("process_flag(trap_exit, true)")
            await _erl_binds_p(erl)
            answer = await erl.eval(
                "Ref = erlang:monitor(process, P), link(P), unlink(P), P ! {exit, bye}, "
                "receive {'DOWN', Ref, _, _, _} -> ok end, "
                "receive {'EXIT', _, _} = E -> E after 0 -> none end"
            )
            assert answer == "none"

    await node.run_process(body)


async def test_late_replies_are_dropped_both_ways(node: Node, epmd: Epmd, tmp_path: Path) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            await erl.eval(
                "S = spawn(fun() -> receive {'$gen_call', {Caller, _} = From, _} -> "
                "receive go -> ok end, gen_server:reply(From, late), Caller ! done end end), "
                "register(slow, S)"
            )
            with pytest.raises(CallTimeout):
                await gen_server.call(("slow", E1), "question", timeout=0.2)
            await erl.eval("slow ! go")
            await recv(lambda m: m == "done", step="the late replier is done")
            assert kernel.flush() == 0  # the late reply went to a dead alias: dropped
            # erl's call times out; the Python server answers it late, through a dead alias
            await _echo_server()
            answer = await erl.eval(f"catch gen_server:call({{echo, '{PY}'}}, {{hold}}, 200)")
            assert answer.startswith("{'EXIT',{timeout,")
            assert await erl.eval(f"gen_server:call({{echo, '{PY}'}}, {{release}})") == "released"
            assert await erl.eval("receive M -> {stray, M} after 0 -> none end") == "none"

    await node.run_process(body)


async def test_rpc_and_erpc_are_served_from_the_allow_list_only(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            module = "'tests.dist._targets'"
            assert await erl.eval(f"rpc:call('{PY}', {module}, add, [1, 2])") == "3"
            assert await erl.eval(f"erpc:call('{PY}', {module}, slow_double, [21])") == "42"
            refused = await erl.eval(f"rpc:call('{PY}', {module}, not_allowed, [])")
            assert "not_allowed" in refused
            assert refused.startswith("{badrpc,")
            failed = await erl.eval(f"catch erpc:call('{PY}', {module}, fail, [<<\"why\">>])")
            assert "ValueError" in failed
            assert "why" in failed
            assert (await erl.eval(f"rpc:call('{PY}', os, getcwd, [])")).startswith("{badrpc,")
            # and Python's rpc to itself through erl's view: the same allow-list
            with pytest.raises(RpcError):
                await dist.rpc_call(PY, "tests.dist._targets", "not_allowed")

    await node.run_process(body)


async def test_ten_megabyte_messages_both_ways(node: Node, epmd: Epmd, tmp_path: Path) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            await _echo_server()
            answer = await erl.eval(
                "B = binary:copy(<<1,2,3,255>>, 2500000), "
                f"{{echo, B}} =:= gen_server:call({{echo, '{PY}'}}, B, 60000)",
                limit=60,
            )
            assert answer == "true"
            blob = bytes(range(256)) * 40_000
            with step("10 MB to erl and back", 60):
                size = await dist.rpc_call(E1, "erlang", "byte_size", [blob], timeout=60)
                back = await dist.rpc_call(
                    E1, "binary", "copy", [b"\xff\x00", 5_000_000], timeout=60
                )
            assert size == len(blob)
            assert back == b"\xff\x00" * 5_000_000

    await node.run_process(body)


async def test_a_frozen_erlang_node_is_detected_within_the_tick_time(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    import signal

    from server.kernel import NodeDownMessage

    async def body() -> None:
        async with (
            distributed(settings(epmd, net_ticktime=2.0)),
            running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path, net_ticktime=2) as erl,
        ):
            pid = await _erl_victim(erl)
            kernel.trap_exit(True)
            kernel.link(pid)
            ref = kernel.monitor(pid)
            kernel.monitor_node(E1)
            await _synced(pid)
            erl.stop_signal(signal.SIGSTOP)
            try:
                started = anyio.current_time()
                with step("noconnection after the tick time", 6.0):
                    down = await recv(lambda m: type(m) is DownMessage, step="DOWN")
                    exited = await recv(lambda m: type(m) is ExitMessage, step="EXIT")
                    nodedown = await recv(lambda m: type(m) is NodeDownMessage, step="nodedown")
                waited = anyio.current_time() - started
            finally:
                erl.stop_signal(signal.SIGCONT)
            assert down == DownMessage(ref, pid, "noconnection")
            assert exited == ExitMessage(pid, "noconnection")
            assert nodedown == NodeDownMessage(E1)
            assert 1.0 <= waited <= 4.0, waited
            assert E1 not in kernel.nodes("connected")

    await node.run_process(body)


async def test_after_a_peer_restart_its_old_pids_are_gone(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with distributed(settings(epmd)):
            async with running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path) as erl:
                old = await _erl_victim(erl)
                old_creation = kernel.current_node().pid_parts(old)[3]
            async with running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path) as erl:
                new = await _erl_victim(erl)
                assert new is not old
                assert kernel.current_node().pid_parts(new)[3] != old_creation
                ref = kernel.monitor(old)
                down = await recv(lambda m: type(m) is DownMessage and m.ref is ref, step="DOWN")
                assert isinstance(down, DownMessage)
                assert down.reason == "noproc"
                kernel.send(old, (Atom("exit"), Atom("wrong")))  # dropped: not the new victim
                await _synced(new)
                assert await erl.eval("is_process_alive(whereis(victim))") == "true"

    await node.run_process(body)


async def test_sys_calls_reach_processes_of_the_other_node_both_ways(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    from server.behaviours import system_messages

    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            await _echo_server()
            target = f"{{echo, '{PY}'}}"
            assert await erl.eval(f"sys:suspend({target})") == "ok"
            assert await erl.eval(f"sys:resume({target})") == "ok"
            state = await erl.eval(f"sys:get_state({target})")
            assert state == '#{<<"calls">> => 0,<<"held">> => []}'
            # and Python asks erl's processes
            erl_state = await system_messages.get_state(("rex", E1))
            assert erl_state is not None
            await system_messages.suspend(("rex", E1))
            await system_messages.resume(("rex", E1))
            assert await dist.rpc_call(E1, "erlang", "node") == E1  # rex serves again

    await node.run_process(body)


async def test_a_visible_node_is_in_erlangs_nodes_and_global_does_not_hang(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with (
            distributed(settings(epmd, hidden=False)),
            running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path) as erl,
        ):
            await _echo_server()
            assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
            assert await erl.eval("nodes()") == f"[{PY}]"
            assert await erl.eval("nodes(hidden)") == "[]"
            # global and rex talk to a visible node; what we drop must not block them
            assert await erl.eval("global:registered_names()", limit=10) == "[]"
            answer = await erl.eval(f"gen_server:call({{echo, '{PY}'}}, still_fine)")
            assert answer == "{echo,still_fine}"

    await node.run_process(body)


async def test_signals_from_one_erlang_process_arrive_in_the_order_sent(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    async def body() -> None:
        async with _py_and_erl(epmd, tmp_path) as erl:
            await _py_victim("collector", trap=True)
            # an erl process links to the collector, sends 2,000 messages, then exits:
            # every message must be in the mailbox before the exit signal
            await erl.eval(
                f"spawn(fun() -> {{collector, '{PY}'}} ! {{whoami, self()}}, "
                "P = receive {pid, X} -> X end, link(P), "
                "[P ! {n, I} || I <- lists:seq(1, 2000)], exit(done) end)"
            )
            got = []
            while True:
                message = await recv(lambda m: type(m) is tuple and m[0] == "got", step="next")
                assert isinstance(message, tuple)
                inner = message[1]
                if type(inner) is ExitMessage:
                    assert inner.reason == "done"
                    break
                got.append(inner[1])
            assert got == list(range(1, 2001))

    await node.run_process(body)
