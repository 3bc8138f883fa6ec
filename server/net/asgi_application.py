"""The application callback that serves an ``[asgi]`` application, and its top supervisor.

An application spec with an ``[asgi]`` table (``server.spec.app_spec.AsgiSpec``) is
started through this module instead of (or around) its own ``mod``. Its tree::

    asgi top supervisor (rest_for_one)
      ├── app        the application's own tree, when it has a mod (its start, as usual)
      ├── lifespan   the ASGI lifespan: startup before anything is served, shutdown last
      ├── web        the listener and its connections (server.net.asgi_server)
      └── purger     purges the app module's old version once no request runs it, or at
                     the end of ``purge_grace`` (``_asgi_purger``)

``rest_for_one``: when the application's own tree restarts, the lifespan and the listener
restart after it (they depend on its processes); when the lifespan restarts, so does the
listener. The listener listens on the env's ``host`` / ``port`` when the application's env
sets them, else on the ``[asgi]`` table's.

The application's own ``prep_stop`` and ``stop`` are called as for any application, with
``None`` as the state (the state its ``start`` returned is not kept when it runs under this
supervisor); its ``config_change`` is called directly by the controller. A change of
``host`` / ``port`` takes effect when the listener restarts.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from server.app.env import get_env
from server.behaviours import resolve, supervisor
from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec
from server.kernel import Pid
from server.net import _asgi_purger, asgi_lifespan, asgi_server, http_server
from server.net.asgi_server import AsgiConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["init", "prep_stop", "start", "stop"]


async def start(start_type: str, args: Mapping[str, Any]) -> tuple[Pid, object]:
    """Start the ASGI top supervisor for the application ``args`` describes."""
    pid = await supervisor.start_link(__name__, dict(args))
    assert pid is not None
    return pid, dict(args)


def init(args: dict[str, Any]) -> SupervisorSpec:
    """The top supervisor's children: the application's own tree, the lifespan, the web."""
    name = str(args["application"])
    asgi = args["asgi"]
    mod = args.get("mod")
    children: list[ChildSpec] = []
    lifespan_state: dict[str, Any] = {}  # the lifespan's state, copied into each scope
    if mod is not None:
        children.append(
            ChildSpec(
                id="app",
                start=(_start_own, mod["module"], mod.get("args")),
                type="supervisor",
                modules=(mod["module"],),
            )
        )
    children.append(
        ChildSpec(
            id="lifespan",
            start=(
                _start_lifespan,
                asgi["app"],
                float(asgi["shutdown_timeout"]),
                lifespan_state,
            ),
            shutdown=float(asgi["shutdown_timeout"]) + 5.0,
        )
    )
    defaults = http_server.node_defaults()
    purger = f"asgi_purger_{name}"
    config = AsgiConfig(
        app=asgi["app"],
        root_path=asgi.get("root_path", ""),
        websocket_handler=asgi.get("websocket_handler"),
        read_size=defaults.read_size,
        send_timeout=defaults.send_timeout,
        purger=purger,
        lifespan_state=lifespan_state,
    )
    host = str(get_env(name, "host", asgi["host"]))
    port = int(get_env(name, "port", asgi["port"]))
    children.append(ChildSpec(id="web", start=(asgi_server.start_link, host, port, config)))
    grace = asgi.get("purge_grace")
    module = str(asgi["app"]).partition(":")[0]
    children.append(
        ChildSpec(
            id="purger",
            start=(_start_purger, module, None if grace is None else float(grace), purger),
        )
    )
    return SupervisorSpec(children=children, strategy="rest_for_one", intensity=5, period=10.0)


async def _start_own(module: str, args: object) -> Pid:
    result = resolve(module).start("normal", args)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, tuple) and result and isinstance(result[0], Pid):
        return result[0]
    if not isinstance(result, Pid):
        raise TypeError(f"{module}.start returned {result!r}, not a pid")
    return result


async def _start_purger(module: str, grace: float | None, name: str) -> Pid:
    return await _asgi_purger.start_link(module, grace, name=name)


async def _start_lifespan(app: str, shutdown_timeout: float, state: dict[str, Any]) -> Pid:
    return await asgi_lifespan.start_link(app, shutdown_timeout=shutdown_timeout, state=state)


async def _own(args: Mapping[str, Any], name: str, *call: object) -> object:
    mod = args.get("mod")
    hook = getattr(resolve(mod["module"]), name, None) if mod else None
    if hook is None:
        return None
    result = hook(*call)
    if inspect.isawaitable(result):
        result = await result
    return result


async def prep_stop(args: Mapping[str, Any]) -> Mapping[str, Any]:
    """The application's own ``prep_stop``, before the tree stops."""
    await _own(args, "prep_stop", None)
    return args


async def stop(args: Mapping[str, Any]) -> None:
    """The application's own ``stop``, after the tree stopped."""
    await _own(args, "stop", None)
