"""A function of a purged version, held by reference, still runs: where OTP says ``badfun``.

OTP raises ``badfun`` when a fun of purged code is called; Python cannot forbid a call
through a reference someone holds without rewriting every function object of the version,
so the code server does not try. This pins the documented difference (README, "The code
server") and what to do instead: hold qualified references, ``module.function`` through the
module's proxy, which always reach the current version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import code_server, kernel

from ._helpers import WORKER

if TYPE_CHECKING:
    from server.kernel import Node

    from ._helpers import App


async def test_a_held_reference_to_a_purged_version_still_runs_it_a_qualified_one_runs_new_code(
    app: App, node: Node
) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module
    proxy = app.import_("worker")
    held = proxy.tell  # resolved now: v1's own function object
    app.load("worker", WORKER, vsn="v2")
    assert await code_server.purge(app.dotted("worker")) is False  # no process ran v1
    assert app.slots("worker") == [("current", "v2")]

    async def body() -> None:
        me = kernel.self()
        held(me, "held")
        assert await kernel.receive() == ("held", me, "v1")  # OTP: badfun
        proxy.tell(me, "qualified")
        assert await kernel.receive() == ("qualified", me, "v2")

    await node.run_process(body)
    assert worker.__vsn__ == "v1"
