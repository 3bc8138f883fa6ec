"""A Python node as an OS process (the demo release, distributed) and a real ``erl``.

This is the README's setup: ``server run`` with ``[node.dist]`` in sys.config, and an Erlang
node calling ``counter_store`` on it. Both use the test's own EPMD on a free loopback
port and ``net_ticktime`` 2 s; the Erlang node is driven like a shell
(``tests._support.erl_shell``).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio
import pytest

from tests._support.erl_shell import ErlShell, running_erl_shell
from tests._support.nodes import REPO, NodeProcess, copy_demo_tree, free_port, set_port
from tests.dist import _cluster_probe as probe
from tests.dist.conftest import COOKIE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests._support.erl_nodes import Epmd

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]

DEMO = "demo@localhost"
TICK = 2
CALL = f"gen_server:call({{counter_store, '{DEMO}'}}"


def _demo_root(tmp_path: Path, epmd: Epmd) -> Path:
    """A copy of the demo whose sys.config makes it ``demo@localhost`` on the test's EPMD."""
    root = copy_demo_tree(tmp_path / "demo")
    set_port(root, free_port())
    allow = ", ".join(f'"{entry}"' for entry in probe.ALLOW)
    config = root / "sys.config"
    config.write_text(
        config.read_text()
        + f"""
[node.dist]
name = "{DEMO}"
cookie = "{COOKIE}"
net_ticktime = {TICK}
epmd_port = {epmd.port}
start_epmd = false
rpc_allow = [{allow}]
"""
    )
    return root


async def _booted(root: Path) -> NodeProcess:
    node = NodeProcess(root, ["run"], 0, env={"PYTHONPATH": str(REPO)}).start()
    try:
        await anyio.to_thread.run_sync(node.wait_for, "release demo 1.0.0 booted")
    except BaseException:
        node.kill()
        raise
    return node


async def _stopped(node: NodeProcess) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(node.kill)


@pytest.fixture
async def demo(tmp_path: Path, epmd: Epmd) -> AsyncIterator[NodeProcess]:
    """The distributed demo node, booted; killed by its pid at the end."""
    node = await _booted(_demo_root(tmp_path, epmd))
    try:
        yield node
    finally:
        await _stopped(node)


async def _erl_connected(erl: ErlShell) -> None:
    await erl.eval("ok = net_kernel:monitor_nodes(true, [{node_type, all}])")  # ours is hidden
    assert await erl.eval(f"net_adm:ping('{DEMO}')") == "pong"
    assert await erl.eval("receive {nodeup, N, _} -> N after 5000 -> timeout end") == DEMO


async def test_erl_calls_counter_store_on_a_python_node(
    demo: NodeProcess, epmd: Epmd, tmp_path: Path
) -> None:
    async with running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path) as erl:
        assert await erl.eval(f'{CALL}, {{incr, <<"k">>}})') == '#{<<"value">> => 1}'
        assert await erl.eval(f'{CALL}, {{incr, <<"k">>}})') == '#{<<"value">> => 2}'
        assert await erl.eval(f'{CALL}, {{get, <<"k">>}})') == '#{<<"value">> => 2}'
        assert await erl.eval(f"{CALL}, {{total}})") == "2"
        assert await erl.eval("nodes(hidden)") == f"[{DEMO}]"
    assert demo.process.poll() is None
    assert demo.complaints() == [line for line in demo.complaints() if "not verified" in line]


async def test_erl_detects_a_frozen_python_node_within_the_tick_time(
    demo: NodeProcess, epmd: Epmd, tmp_path: Path
) -> None:
    async with running_erl_shell(
        "e1", epmd=epmd, cookie=COOKIE, home=tmp_path, net_ticktime=TICK
    ) as erl:
        await _erl_connected(erl)
        demo.send_signal(signal.SIGSTOP)
        try:
            started = anyio.current_time()
            answer = await erl.eval(
                f"receive {{nodedown, '{DEMO}', _}} -> nodedown after 6000 -> timeout end", limit=8
            )
            waited = anyio.current_time() - started
        finally:
            demo.send_signal(signal.SIGCONT)
        assert answer == "nodedown"
        assert 0.5 * TICK <= waited <= 1.25 * TICK + 1.5, waited
        # awake again, it answers a new connection
        assert await erl.eval(f'{CALL}, {{incr, <<"k">>}})') == '#{<<"value">> => 1}'
        assert await erl.eval("receive {nodeup, N, _} -> N after 5000 -> timeout end") == DEMO


async def test_after_a_restart_erl_finds_the_old_pids_dead_and_the_new_node_answers(
    tmp_path: Path, epmd: Epmd
) -> None:
    root = _demo_root(tmp_path, epmd)
    node = await _booted(root)
    try:
        async with running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path) as erl:
            await _erl_connected(erl)
            await erl.eval(
                f"Old = rpc:call('{DEMO}', 'tests.dist._cluster_probe', whereis, [counter_store])"
            )
            assert (await erl.eval("is_pid(Old) andalso node(Old)")) == DEMO
            assert await erl.eval(f'{CALL}, {{incr, <<"k">>}})') == '#{<<"value">> => 1}'
            assert await anyio.to_thread.run_sync(node.stop) == 0
            answer = await erl.eval(
                f"receive {{nodedown, '{DEMO}', _}} -> nodedown after 5000 -> timeout end"
            )
            assert answer == "nodedown"
            node = await _booted(root)
            # the new incarnation answers (a fresh counter) ...
            assert await erl.eval(f'{CALL}, {{get, <<"k">>}})') == '#{<<"value">> => 0}'
            await erl.eval(
                f"New = rpc:call('{DEMO}', 'tests.dist._cluster_probe', whereis, [counter_store])"
            )
            assert await erl.eval("is_pid(New) andalso New =/= Old") == "true"
            # ... and the old pid is dead: a monitor of it is DOWN noproc
            answer = await erl.eval(
                "R = erlang:monitor(process, Old), "
                "receive {'DOWN', R, process, Old, Why} -> Why after 5000 -> timeout end"
            )
            assert answer == "noproc"
            answer = await erl.eval(
                "process_flag(trap_exit, true), link(Old), "
                "receive {'EXIT', Old, Why2} -> Why2 after 5000 -> timeout end"
            )
            assert answer == "noproc"
    finally:
        await _stopped(node)
