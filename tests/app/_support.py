"""Helpers for the application controller tests: specs, booting a controller, events.

Everything runs inside a test process (``node.run_process(body)``) that traps exits (the
controller is linked to it), is registered as the collector of the callback modules'
events, and monitors the controller to see how it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from server import kernel
from server.app import controller
from server.kernel import DownMessage, Pid, Ref
from server.spec.app_spec import AppSpec, StartCallback
from tests.app.callbacks.app_cb import COLLECTOR
from tests.behaviours._helpers import recv, within

if TYPE_CHECKING:
    from pydantic import JsonValue

APP_CB = "tests.app.callbacks.app_cb"


def spec(
    name: str,
    *,
    deps: tuple[str, ...] = (),
    env: dict[str, JsonValue] | None = None,
    module: str | None = APP_CB,
    vsn: str = "1.0",
    **args: JsonValue,
) -> AppSpec:
    """An application spec whose callback module (None: a library application) gets
    ``{"id": name, **args}``."""
    modules = [module] if module else []
    return AppSpec(
        name=name,
        vsn=vsn,
        description=f"the {name} application",
        modules=modules,
        applications=list(deps),
        mod=StartCallback(module=module, args={"id": name, **args}) if module else None,
        env=env or {},
    )


@dataclass
class Booted:
    """A running controller, monitored by the test process."""

    pid: Pid
    ref: Ref

    async def ended(self, name: str = "controller ended") -> object:
        """Wait for the controller's end; its exit reason."""
        message = await recv(lambda m: type(m) is DownMessage and m.ref is self.ref, step=name)
        assert isinstance(message, DownMessage)
        return message.reason


async def boot(sys_env: dict[str, dict[str, Any]] | None = None) -> Booted:
    """Trap exits, register as the collector, start a controller and monitor it."""
    kernel.trap_exit(True)
    kernel.register(COLLECTOR, kernel.self())
    pid = await within(controller.start_link(sys_env), "controller start")
    return Booted(pid, kernel.monitor(pid))


async def start(*specs: AppSpec, start_type: str = "temporary") -> dict[str, Pid]:
    """Load and start each application in order; their masters' pids (from ``start``)."""
    masters: dict[str, Pid] = {}
    for app in specs:
        await within(controller.load_application(app), f"load {app.name}")
        await within(controller.start_application(app.name, start_type), f"start {app.name}")
        if app.mod is not None:
            masters[app.name] = (await event("start", app.name))[3]  # type: ignore[assignment]
    return masters


def is_event(kind: str | None = None, app: str | None = None) -> Any:
    return lambda m: (
        type(m) is tuple
        and m[:1] == ("app_event",)
        and (kind is None or m[1] == kind)
        and (app is None or m[2] == app)
    )


async def event(kind: str, app: str) -> tuple[object, ...]:
    """The next event ``kind`` of ``app``, without the ``"app_event"`` tag."""
    message = await recv(is_event(kind, app), step=f"{kind} of {app}")
    assert type(message) is tuple
    return message[1:]


async def events(count: int, *, name: str) -> list[tuple[object, ...]]:
    """The next ``count`` events as ``(kind, app)``, in the order they were sent."""
    taken: list[tuple[object, ...]] = []
    for index in range(count):
        message = await recv(is_event(), step=f"{name} (event {index + 1} of {count})")
        assert type(message) is tuple
        taken.append((message[1], message[2]))
    return taken


def pending_events() -> list[object]:
    """The events already queued, taken without waiting (after a sync point: none left)."""
    taken = []
    while True:
        try:
            taken.append(kernel.receive_nowait(is_event()))
        except anyio.WouldBlock:
            return taken


async def ended(pid: Pid, name: str) -> object:
    """Monitor ``pid`` and wait for its end; its exit reason."""
    ref = kernel.monitor(pid)
    message = await recv(lambda m: type(m) is DownMessage and m.ref is ref, step=name)
    assert isinstance(message, DownMessage)
    return message.reason


async def running() -> list[str]:
    """The names of the running applications, in start order."""
    return [row.name for row in await within(controller.which_applications(), "which")]
