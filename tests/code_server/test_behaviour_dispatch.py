"""Behaviours dispatch every callback through the callback module's current version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel
from server.behaviours import gen_server, system_messages
from server.errors import CalleeExited

from ._helpers import within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

    from ._helpers import App

SERVER = """
    from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply

    __vsn__ = "$vsn"


    def init(args):
        return Ok({"count": 0, "migrations": []})


    def handle_call(request, from_, state):
        if request == "state":
            return Reply(state, state)
        state = {**state, "count": state["count"] + 1}
        return Reply((__vsn__, request, state["count"]), state)


    def handle_cast(request, state):
        return NoReply({**state, "cast_by": __vsn__})


    def handle_info(message, state):
        return NoReply({**state, "info_by": __vsn__})


    def code_change(old_vsn, state, extra):
        migration = (__vsn__, old_vsn, extra)
        return {**state, "migrations": [*state["migrations"], migration]}
"""


async def _start(app: App) -> Pid:
    pid = await within(gen_server.start(app.dotted("server")), "start server")
    assert pid is not None
    return pid


async def test_after_a_load_the_next_message_runs_the_new_code(app: App, node: Node) -> None:
    app.first("server", SERVER, vsn="v1")

    async def body() -> None:
        pid = await _start(app)
        assert await within(gen_server.call(pid, "a"), "call v1") == ("v1", "a", 1)
        app.load("server", SERVER, vsn="v2")
        assert await within(gen_server.call(pid, "b"), "call v2") == ("v2", "b", 2)
        gen_server.cast(pid, "c")
        kernel.send(pid, "info")
        state = await within(gen_server.call(pid, "state"), "state")
        assert (state["cast_by"], state["info_by"]) == ("v2", "v2")
        assert not code_server.check_process_code(pid, app.dotted("server"))
        assert code_server.soft_purge(app.dotted("server")), "nothing pins the old version"

    await node.run_process(body)


@pytest.mark.parametrize(
    ("loaded", "old_vsn"),
    [("v2", "v1"), ("v1", ("down", "v2"))],
    ids=["upgrade", "downgrade"],
)
async def test_change_code_runs_the_new_versions_code_change(
    app: App, node: Node, loaded: str, old_vsn: object
) -> None:
    app.first("server", SERVER, vsn="v2" if loaded == "v1" else "v1")
    name = app.dotted("server")

    async def body() -> None:
        pid = await _start(app)
        await within(system_messages.suspend(pid), "suspend")
        app.load("server", SERVER, vsn=loaded)
        await within(system_messages.change_code(pid, name, old_vsn, "extra"), "change_code")
        await within(system_messages.resume(pid), "resume")
        state = await within(gen_server.call(pid, "state"), "state")
        assert state["migrations"] == [(loaded, old_vsn, "extra")]

    await node.run_process(body)


async def test_a_server_whose_module_was_deleted_fails_its_next_call(app: App, node: Node) -> None:
    app.first("server", SERVER, vsn="v1")

    async def body() -> None:
        pid = await _start(app)
        code_server.delete(app.dotted("server"))
        with pytest.raises(CalleeExited, match="deleted"):
            await within(gen_server.call(pid, "a"), "call")
        assert not kernel.is_alive(pid)

    await node.run_process(body)
