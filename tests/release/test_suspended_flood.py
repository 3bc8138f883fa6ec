"""Messages sent to a process suspended for an upgrade: none lost, each sender's order kept,
calls answered by the new code.

The demo's counter store is upgraded to a variant whose ``code_change`` waits for ``"go"``:
while it waits, the store is suspended in the middle of the install, and many client
processes flood it with casts, plain messages and calls. Only then does the test say go.
"""

from __future__ import annotations

import shutil
import textwrap
from typing import TYPE_CHECKING, Any

from server import kernel
from server.behaviours import gen_server
from server.release import handler
from tests.behaviours._helpers import recv, tagged, within
from tests.release._live import boot_demo, stop_demo

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node, Pid

VSN = "1.0.1"
PROBE = "flood_probe"
NOTERS = 50  # clients sending notes, then one call asking for them
NOTES = 40  # notes per noter: casts and plain messages, alternately
CALLERS = 100  # clients sending one call each

STORE = '''"""Counter store {vsn}: counts and, per sender, the notes it got; a slow code_change."""

from __future__ import annotations

from typing import Any

from server import kernel
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply

__vsn__ = "{vsn}"


def init(args: object) -> Ok:
    return Ok({{"counts": {{}}, "notes": {{}}}})


def handle_call(request: Any, from_: Any, state: Any) -> Reply:
    counts = state["counts"]
    match request:
        case ("incr", str(key)):
            counts[key] = counts.get(key, 0) + 1
            return Reply({{"value": counts[key], "vsn": __vsn__}}, state)
        case ("get", str(key)):
            return Reply({{"value": counts.get(key, 0), "vsn": __vsn__}}, state)
        case ("total",):
            return Reply(sum(counts.values()), state)
        case ("notes", sender):
            return Reply({{"notes": state["notes"].get(sender, []), "vsn": __vsn__}}, state)
    return Reply({{"error": "unknown request"}}, state)


def handle_cast(request: Any, state: Any) -> NoReply:
    match request:
        case ("note", sender, int(seq)):
            state["notes"].setdefault(sender, []).append(("cast", seq))
    return NoReply(state)


def handle_info(message: Any, state: Any) -> NoReply:
    match message:
        case ("note", sender, int(seq)):
            state["notes"].setdefault(sender, []).append(("info", seq))
    return NoReply(state)


async def code_change(old_vsn: Any, state: Any, extra: Any) -> Any:
    if kernel.whereis("counter_store") == kernel.self():  # not in a dry run
        kernel.send("{probe}", ("in_code_change", kernel.self()))
        await kernel.receive(lambda m: m == "go")
    if isinstance(old_vsn, tuple):  # ("down", vsn)
        return dict(state["counts"])
    return {{"counts": dict(state), "notes": {{}}}}
'''


def make_flood_variant(root: Path, vsn: str) -> None:
    """Add release demo ``vsn``: counter ``vsn`` with the store above, ``update`` both ways."""
    target = root / "apps" / f"counter-{vsn}"
    shutil.copytree(root / "apps" / "counter-1.0.0", target)
    (target / "counter" / "store.py").write_text(STORE.format(vsn=vsn, probe=PROBE))
    spec = (root / "appspecs" / "counter-1.0.0.toml").read_text()
    steps = '  {op = "update", module = "counter.store", change = "advanced"},\n'
    spec = spec.replace('vsn = "1.0.0"', f'vsn = "{vsn}"', 1) + (
        f'\n[[appup.up]]\nvsn = "1.0.0"\ninstructions = [\n{steps}]\n'
        f'\n[[appup.down]]\nvsn = "1.0.0"\ninstructions = [\n{steps}]\n'
    )
    (root / "appspecs" / f"counter-{vsn}.toml").write_text(spec)
    (root / "releases" / f"demo-{vsn}.toml").write_text(
        textwrap.dedent(
            f"""\
            name = "demo"
            vsn = "{vsn}"

            [[applications]]
            name = "counter"
            vsn = "{vsn}"
            """
        )
    )


async def noter(test: Pid, store: Pid) -> None:
    me = kernel.self()
    for seq in range(NOTES):
        if seq % 2 == 0:
            gen_server.cast(store, ("note", me, seq))
        else:
            kernel.send(store, ("note", me, seq))
    kernel.send(test, ("sending call", me))
    # sent before this process next waits: the call is queued behind the notes
    reply = await gen_server.call(store, ("notes", me), timeout=60.0)
    kernel.send(test, ("done", me, reply))


async def caller(test: Pid, store: Pid) -> None:
    me = kernel.self()
    kernel.send(test, ("sending call", me))
    reply = await gen_server.call(store, ("incr", "flood"), timeout=60.0)
    kernel.send(test, ("done", me, reply))


async def test_a_flood_while_suspended_is_all_answered_in_order_by_the_new_code(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_flood_variant(demo_tree, VSN)

    async def run() -> None:
        me = kernel.self()
        kernel.register(PROBE, me)
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await demo.http("POST", "/incr/a")
            await demo.http("POST", "/incr/a")
            await within(handler.unpack(demo.package(VSN)), "unpack", 30)
            store = kernel.whereis("counter_store")
            assert store is not None

            async def install() -> None:
                report = await handler.install(VSN, code_change_timeout=60.0)
                kernel.send(me, ("installed", report.to_vsn))

            kernel.spawn(install)
            await recv(lambda m: m == ("in_code_change", store), step="suspended", limit=30)

            clients = [kernel.spawn(noter, me, store) for _ in range(NOTERS)]
            clients += [kernel.spawn(caller, me, store) for _ in range(CALLERS)]
            for client in clients:
                await recv(tagged("sending call", client), step="flood sent")
            info = kernel.process_info(store)
            assert info is not None
            assert info.message_queue_len == NOTERS * (NOTES + 1) + CALLERS, "all queued"

            kernel.send(store, "go")
            await recv(lambda m: m == ("installed", VSN), step="installed", limit=30)
            replies: dict[Pid, Any] = {}
            for client in clients:
                message = await recv(tagged("done", client), step="answered", limit=30)
                assert isinstance(message, tuple)
                replies[client] = message[2]

            expected = [("cast" if s % 2 == 0 else "info", s) for s in range(NOTES)]
            for client in clients[:NOTERS]:
                assert replies[client] == {"notes": expected, "vsn": VSN}, "none lost, in order"
            values = sorted(replies[c]["value"] for c in clients[NOTERS:])
            assert values == list(range(1, CALLERS + 1)), "each call counted once"
            assert {replies[c]["vsn"] for c in clients[NOTERS:]} == {VSN}, "the new code"
            assert kernel.whereis("counter_store") is store, "the same process, migrated"
            assert (await demo.store_state())["counts"] == {"a": 2, "flood": CALLERS}
            status, body = await demo.http("POST", "/incr/a")
            assert (status, body["value"]) == (200, 3)
        finally:
            await stop_demo(demo)

    await node.run_process(run)
