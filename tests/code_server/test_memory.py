"""After a purge the old version is really gone: nothing keeps its module alive."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel
from server.errors import ModuleLoadError

from ._helpers import WORKER, down, started

if TYPE_CHECKING:
    from server.kernel import Node

    from ._helpers import App

SMALL = """
    __vsn__ = "$vsn"
    TABLE = list(range(50))


    class Thing:
        def value(self):
            return TABLE[-1]


    def f():
        return Thing().value()
"""


def test_a_purged_version_is_freed(app: App) -> None:
    old = app.first("small", SMALL, vsn="v1").module
    module_ref, function_ref = weakref.ref(old), weakref.ref(old.f)
    assert app.import_("small").f() == 49
    del old
    app.load("small", SMALL, vsn="v2")
    gc.collect()
    assert module_ref() is not None, "the old version is still in memory"
    assert code_server.soft_purge(app.dotted("small"))
    gc.collect()
    assert module_ref() is None
    assert function_ref() is None


async def test_a_version_a_process_crashed_in_is_freed_after_purge(app: App, node: Node) -> None:
    old = app.first("worker", WORKER, vsn="v1").module
    module_ref, function_ref = weakref.ref(old), weakref.ref(old.park)

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(app.import_("worker").park, kernel.self())
        await started("parked", pid, "v1", step="parked")
        app.load("worker", WORKER, vsn="v2")
        kernel.send(pid, "go")  # raises ValueError three frames deep in v1
        reason = (await down(ref, step="crashed")).reason
        assert isinstance(reason, ValueError)
        assert reason.__traceback__ is None, "a stored exit reason keeps no frames"

    del old
    await node.run_process(body)
    assert code_server.soft_purge(app.dotted("worker")), "the crashed process is gone"
    gc.collect()
    assert module_ref() is None
    assert function_ref() is None


async def test_a_version_whose_processes_were_killed_by_purge_is_freed(
    app: App, node: Node
) -> None:
    old = app.first("worker", WORKER, vsn="v1").module
    module_ref = weakref.ref(old)

    async def body() -> None:
        me = kernel.self()
        for entry in ("local_loop", "park", "qualified_recursion"):
            pid = kernel.spawn(getattr(app.import_("worker"), entry), me)
            await started("parked" if entry == "park" else "iteration", pid, "v1", step=entry)
        app.load("worker", WORKER, vsn="v2")
        assert await code_server.purge(app.dotted("worker"))

    del old
    await node.run_process(body)
    gc.collect()
    assert module_ref() is None


REGISTRY = """
    SEEN = []
"""

FAILING = """
    import sys
    import weakref

    from $app import registry

    registry.SEEN.append(weakref.ref(sys.modules[__name__]))  # the version being built


    def f():
        return "never current"


    raise RuntimeError("the body fails")
"""


def test_a_version_that_failed_to_load_is_freed(app: App) -> None:
    registry = app.first("registry", REGISTRY).module
    app.first("small", SMALL, vsn="v1")
    with pytest.raises(ModuleLoadError):
        app.load("small", FAILING)
    gc.collect()
    [failed] = registry.SEEN
    assert failed() is None


def test_load_and_purge_cycles_do_not_grow_memory(app: App) -> None:
    """1,000 cycles in two halves; a leak shows in both, a table resized once in one."""
    name = app.dotted("small")
    app.first("small", SMALL, vsn="v0")
    counter = iter(range(1, 10_000))

    def cycles(count: int) -> int:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            app.load("small", SMALL, vsn=f"v{next(counter)}")
            assert code_server.soft_purge(name)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before

    cycles(50)  # warm caches (interned names, the first versions' shared constants)
    tracemalloc.start()
    try:
        one_version = _size_of_one_version(app)
        grown = min(cycles(500), cycles(500))
    finally:
        tracemalloc.stop()
    assert one_version > 5_000, "the measure sees a version at all"
    assert grown < 16_000, f"grew {grown} bytes over 500 cycles ({one_version} B a version)"


def _size_of_one_version(app: App) -> int:
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    app.load("small", SMALL, vsn="measured")
    after = tracemalloc.get_traced_memory()[0]
    assert code_server.soft_purge(app.dotted("small"))
    return after - before
