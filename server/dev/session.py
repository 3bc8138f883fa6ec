"""``server dev --root``: a source tree's release, run as the node would, reloaded as you edit.

How this works:

1. ``prepare`` reads everything before any process starts, so a bad file is one error:
   the source tree, the release's specs checked against their source folders, and the env
   layers (the tree's sys.config, then ``SERVER_CONFIG__APP__KEY`` from the environment)
   checked against each application's ``env_schema`` as ``run_node`` checks them at boot.
2. ``serve`` is the dev node's first process. It starts the application controller with
   the merged env, loads each application from its source folder (not from a package) and
   starts them in release order, each **temporary** whatever the release says: in
   development an application that ends is reported and started again at the next good
   save, instead of taking the node down (``load`` and ``none`` keep their meaning).
3. A watcher process (linked) sends it each batch of changed modules. The batch is
   reloaded in place, module by module (``reload_module``). Then each running application
   that got a new version of its callback module (``[mod] module``), of a module one of its
   supervisors runs, or of a module whose old-code processes the purge killed, is
   restarted: stop and start through the controller, said in one ``restarted`` line. An
   application that is not running is started by any good reload of one of its modules.
   A refused module (a syntax error) restarts nothing.
4. It monitors each running application's top supervisor: an end it did not ask for is
   said in one ``stopped`` line, and the application waits for the next good save.
5. ``("stop",)`` (Ctrl-C) ends the watcher, then the controller, which stops the
   applications in reverse start order (their ``stop`` callbacks run).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

from server import code_server, kernel
from server.app import controller
from server.behaviours import supervisor
from server.dev.reloader import SourcesChanged, reload_batch, send_changes
from server.errors import ApplicationError, CallError, ReleaseError, ServerError
from server.net import http_server
from server.net.http_server import HttpDefaults
from server.node import stop_in_reverse
from server.release.boot import parse_release_name
from server.release.current import set_current_release
from server.release.source_tree import SourceTree
from server.spec.env_schema import check_release_env
from server.spec.sys_config import ENV_PREFIX, env_from_environ, merge_env

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from server.kernel import Pid, Ref
    from server.spec.release_view import ReleaseView
    from server.spec.sys_config import SysConfig

__all__ = ["DevRelease", "prepare", "serve"]


Say = Callable[[str], None]


@final
@dataclass(frozen=True, slots=True)
class DevRelease:
    """What ``serve`` runs: a release of a source tree, its source folders and its env."""

    view: ReleaseView
    lib_dirs: dict[str, Path]  # each application's source folder, apps/<app>-<vsn>/
    env: dict[str, dict[str, Any]]  # every layer merged, as the controller is given it
    sys_config: SysConfig
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The release's name."""
        return self.view.spec.name

    @property
    def vsn(self) -> str:
        """The release's version."""
        return self.view.spec.vsn


def prepare(
    root: Path,
    release: str | None = None,
    config: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> DevRelease:
    """Read the source tree's release ``release`` (default ``[node] release``) and its env.

    Env layers, each over the one before: the application specs' ``env``, ``config``
    (default ``<root>/sys.config``), the environment's ``SERVER_CONFIG__APP__KEY``.

    Raises:
        SpecError: a spec or sys.config is malformed, a value does not fit its
            application's ``env_schema``, or sys.config names an application the release
            lacks.
        BuildError: a spec or source folder is missing or inconsistent.
        ReleaseError: no release is named, or the name is not ``<name>-<vsn>``.
    """
    tree = SourceTree(root, config)
    wanted = release or tree.sys_config.node.release
    if wanted is None:
        raise ReleaseError(
            f"no release to run from {tree.root}: pass --release NAME-VSN, "
            "or set [node] release in sys.config"
        )
    name, vsn = parse_release_name(wanted)
    view = tree.view(name, vsn)
    layers = [
        (str(tree.config or tree.root / "sys.config"), tree.sys_config.env),
        (
            f"the environment ({ENV_PREFIX}...)",
            env_from_environ(os.environ if environ is None else environ),
        ),
    ]
    warnings = check_release_env(
        {app: (spec.env_schema, spec.env) for app, spec in view.apps.items()},
        layers,
        f"release {name} {vsn}",
    )
    return DevRelease(
        view=view,
        lib_dirs={e.name: tree.app_dir(e.name, e.vsn) for e in view.spec.applications},
        env=merge_env(*(tables for _, tables in layers)),
        sys_config=tree.sys_config,
        warnings=tuple(warnings),
    )


@dataclass(slots=True)
class _Running:
    top: Pid | None
    ref: Ref | None  # the monitor of ``top``


@dataclass
class _Session:
    """The serving process's state: which applications run, and how to say things."""

    release: DevRelease
    grace: float
    say: Say
    explain: Callable[[ServerError], str]
    running: dict[str, _Running] = field(default_factory=dict)
    tops: dict[str, frozenset[str]] = field(init=False)  # each app's top-level module names

    def __post_init__(self) -> None:
        self.tops = {
            app: frozenset(code_server.top_level_names(lib))
            for app, lib in self.release.lib_dirs.items()
        }

    def started_apps(self) -> list[str]:
        """The applications the release starts (not ``load`` or ``none``), in order."""
        return [
            e.name for e in self.release.view.spec.applications if e.type not in ("load", "none")
        ]

    def owns(self, app: str, module: str) -> bool:
        """Whether ``module`` is one of ``app``'s (listed in its spec, or under its folder)."""
        spec = self.release.view.app(app)
        return module in spec.modules or module.partition(".")[0] in self.tops[app]

    async def start(self, app: str, line: str) -> None:
        """Start ``app`` (stopping what the controller still has of it) and say ``line``."""
        with contextlib.suppress(ApplicationError):  # what is left of an ended one
            await controller.stop_application(app)
        try:
            await controller.start_application(app, "temporary")
        except ApplicationError as exc:
            self.say(f"stopped  {app}: {self.explain(exc)}; save a file of it to start it again")
            return
        top = (await controller.top_supervisors()).get(app)
        self.running[app] = _Running(top, kernel.monitor(top) if top is not None else None)
        self.say(line)

    async def stop(self, app: str) -> None:
        """Stop ``app``, not saying so (a restart follows)."""
        running = self.running.pop(app, None)
        if running is not None and running.ref is not None:
            kernel.demonitor(running.ref, flush=True)
        with contextlib.suppress(ApplicationError):
            await controller.stop_application(app)

    def ended(self, message: kernel.DownMessage) -> None:
        """An application's top supervisor ended without being asked: say so."""
        app = next((a for a, r in self.running.items() if r.ref is message.ref), None)
        if app is None:
            return
        del self.running[app]
        reason = _one_line(repr(message.reason))
        self.say(
            f"stopped  {app}: its supervision tree ended ({reason}); "
            "save a file of it to start it again"
        )

    async def supervisor_modules(self, app: str) -> set[str]:
        """The modules ``app``'s supervisors run: their callbacks and supervisor children's."""
        running = self.running.get(app)
        found: set[str] = set()
        stack = [running.top] if running is not None and running.top is not None else []
        while stack:
            sup = stack.pop()
            module = kernel.get_label(sup, "module")
            if isinstance(module, str):
                found.add(module)
            try:
                children = await supervisor.which_children(sup)
            except CallError:  # ended meanwhile: nothing more to learn from it
                continue
            for child in children:
                if child.type != "supervisor":
                    continue
                if child.modules != "dynamic":
                    found.update(child.modules)
                if isinstance(child.pid, kernel.Pid):
                    stack.append(child.pid)
        return found

    async def changed(self, modules: tuple[str, ...]) -> None:
        """Reload ``modules``, then restart or start the applications that need it."""
        supervised = {app: await self.supervisor_modules(app) for app in self.running}
        events = await reload_batch(
            modules, grace=self.grace, report=lambda event: self.say(str(event))
        )
        reloaded = [e.module for e in events if e.outcome == "reloaded"]
        killed = {e.module for e in events if e.outcome == "purged" and e.killed}
        for app in self.started_apps():
            mine = [m for m in reloaded if self.owns(app, m)]
            if not mine:
                continue
            if app not in self.running:
                await self.start(app, f"started  {app}: {', '.join(mine)} reloaded")
                continue
            why = self.why_restart(app, mine, supervised.get(app, set()), killed)
            if why is not None:
                await self.stop(app)
                await self.start(app, f"restarted {app}: {why}")

    def why_restart(
        self, app: str, mine: list[str], supervised: set[str], killed: set[str]
    ) -> str | None:
        """Why the reload of ``mine`` needs ``app`` restarted, or None (reloaded in place)."""
        mod = self.release.view.app(app).mod
        for module in mine:
            if mod is not None and module == mod.module:
                return f"{module} is its callback module"
            if module in supervised:
                return f"{module} runs one of its supervisors"
            if module in killed:
                return f"the purge of {module} killed processes of it"
        return None


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def serve(
    release: DevRelease,
    *,
    grace: float,
    say: Say,
    ready: Callable[[], None],
    explain: Callable[[ServerError], str] = str,
) -> object:
    """Boot ``release`` from its sources and serve, reloading, until ``("stop",)``.

    Run it as a node's first process. ``say`` gets each line to show (boot, reloads,
    restarts, stops); ``ready`` is called once every source folder is watched; ``explain``
    words an error in one line.

    Returns:
        None after ``("stop",)``; the reason of the controller or the watcher if one ended.
    """
    kernel.trap_exit(True)
    http_server.configure(HttpDefaults(**release.sys_config.node.http.model_dump()))
    controller_pid = await controller.start_link(release.env)
    session = _Session(release, grace, say, explain)
    for entry in release.view.spec.applications:
        if entry.type != "none":
            spec = release.view.app(entry.name)
            await controller.load_application(spec, release.lib_dirs[entry.name])
    set_current_release(release.name, release.vsn)
    for app in session.started_apps():
        await session.start(app, f"started  {app} {release.view.app(app).vsn}")
    roots = [release.lib_dirs[e.name] for e in release.view.spec.applications]
    watcher = kernel.spawn_link(send_changes, kernel.self(), roots, ready)
    while True:
        message = await kernel.receive()
        match message:
            case SourcesChanged(modules=modules):
                await session.changed(modules)
            case kernel.DownMessage():
                session.ended(message)
            case kernel.ExitMessage(pid=pid, reason=reason) if pid in (controller_pid, watcher):
                await stop_in_reverse([controller_pid, watcher])
                return reason
            case ("stop",):
                await stop_in_reverse([controller_pid, watcher])
                return None
