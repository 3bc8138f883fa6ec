"""The supervisor's queries: get_callback_module, get_spec_info, get_childspec, and the
typed replies its engine answers with (a refusal is ``Refused``, a failed start ``Failed``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import gen_server, supervisor
from server.behaviours.replies import Failed, Ok, Refused
from server.behaviours.supervisor import SpecInfo
from server.behaviours.supervisor_callbacks import SupervisorSpec, supervisor_child
from server.errors import CalleeExited, SupervisorError
from tests.behaviours.callbacks import sup_given, worker_probe

from ._supervisor_support import children, events, kill_and_wait, start_sup, within

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.kernel import Node, Pid


def two(collector: Pid) -> SupervisorSpec:
    return SupervisorSpec(
        children=[worker_probe.child("a", collector), worker_probe.child("b", collector)],
        strategy="rest_for_one",
        intensity=4,
        period=7.5,
    )


async def test_get_callback_module_names_the_callback_not_the_engine(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        inner = SupervisorSpec(children=[worker_probe.child("inner", me)])
        spec = SupervisorSpec(children=[supervisor_child("sub", sup_given, inner)])
        sup = await start_sup(spec, name="queried_sup")
        assert await within(supervisor.get_callback_module(sup), "by pid") == sup_given.__name__
        by_name = await within(supervisor.get_callback_module("queried_sup"), "by name")
        assert by_name == sup_given.__name__
        sub = (await children(sup))["sub"]
        assert isinstance(sub, kernel.Pid)
        assert await within(supervisor.get_callback_module(sub), "nested") == sup_given.__name__

    await node.run_process(body)


async def test_get_spec_info_reports_the_flags_and_the_child_ids(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")
        info = await within(supervisor.get_spec_info(sup), "get_spec_info")
        assert info == SpecInfo("rest_for_one", 4, 7.5, "never", ("a", "b"))
        pool = await start_sup(
            SupervisorSpec(
                children=[worker_probe.child("template", me)], strategy="simple_one_for_one"
            )
        )
        info = await within(supervisor.get_spec_info(pool), "pool")
        assert (info.strategy, info.child_ids) == ("simple_one_for_one", ("template",))

    await node.run_process(body)


QUERIES: dict[str, Callable[[Pid], Awaitable[object]]] = {
    "get_callback_module": supervisor.get_callback_module,
    "get_spec_info": supervisor.get_spec_info,
    "get_childspec": lambda sup: supervisor.get_childspec(sup, "a"),
    "which_children": supervisor.which_children,
    "count_children": supervisor.count_children,
    "terminate_child": lambda sup: supervisor.terminate_child(sup, "a"),
    "restart_child": lambda sup: supervisor.restart_child(sup, "a"),
    "delete_child": lambda sup: supervisor.delete_child(sup, "a"),
}


@pytest.mark.parametrize("query", list(QUERIES), ids=list(QUERIES))
async def test_a_dead_supervisor_is_noproc(node: Node, query: str) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        sup = await start_sup(two(kernel.self()))
        await kill_and_wait(sup)
        with pytest.raises(CalleeExited) as info:
            await within(QUERIES[query](sup), query)
        assert info.value.reason == kernel.NOPROC
        with pytest.raises(CalleeExited) as named:
            await within(supervisor.get_callback_module("nobody_has_this_name"), "by name")
        assert named.value.reason == kernel.NOPROC

    await node.run_process(body)


async def test_get_childspec_of_an_unknown_child_is_refused(node: Node) -> None:
    async def body() -> None:
        sup = await start_sup(two(kernel.self()))
        before = await children(sup)
        with pytest.raises(SupervisorError, match="not_found"):
            await within(supervisor.get_childspec(sup, "nobody"), "by id")
        with pytest.raises(SupervisorError, match="not_found"):
            await within(supervisor.get_childspec(sup, kernel.self()), "by pid")
        assert await children(sup) == before

    await node.run_process(body)


async def test_the_engine_answers_with_typed_replies(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")

        async def ask(request: object) -> object:
            return await within(gen_server.call(sup, request, timeout=math.inf), repr(request))

        assert await ask(supervisor.GetCallbackModule()) == Ok(sup_given.__name__)
        assert await ask(supervisor.RestartChild("nobody")) == Refused("not_found")
        a = (await children(sup))["a"]
        assert await ask(supervisor.StartChild(worker_probe.child("a", me))) == Refused(
            ("already_started", a)
        )
        failed = await ask(supervisor.StartChild(worker_probe.child("c", me, plan=["refuse"])))
        assert failed == Failed(("refused", "c"))
        assert await ask(("which_children",)) == Refused(
            ("unknown_request", repr(("which_children",)))
        )
        assert list(await children(sup)) == ["a", "b"], "nothing was added"

    await node.run_process(body)
