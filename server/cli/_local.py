"""The ``server`` commands that run here, not in a node: run, build, new, keygen, dev, start.

``run_here`` runs one of them; ``main`` imports this module only for them, so that a
command that only talks to a running node (``server status``) does not load what a node
is made of.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from rich.console import Console

from server import code_server, kernel
from server.cli._failure import in_words
from server.cli._logging import configure_logging, reopen_logs
from server.cli._new import new_project
from server.cli._output import add_package_row, packages_table
from server.dev.reloader import ReloadEvent, watch
from server.dev.session import DevRelease, prepare, serve
from server.dev.start_function import resolve_start, serve_start
from server.errors import LocalClusterError, ReleaseError
from server.heart import (
    RESTARTS_ENV,
    run_heart_on_root,
    start_detached,
    start_nodes,
    stop_nodes,
)
from server.node import (
    RESTART_NEW_PROCESS,
    NodeLock,
    control_service,
    install_package,
    node_config,
    notify,
    run_node,
)
from server.release.boot import parse_release_name
from server.release.package import build_package
from server.release.releases_file import ReleasesFile, read_releases
from server.release.signature import (
    TrustedKeys,
    generate_key_pair,
    public_key_text,
    read_signing_key,
)
from server.release.source_tree import SourceTree
from server.spec.sys_config import SysConfig, read_sys_config

if TYPE_CHECKING:
    import argparse

__all__ = ["node_logging", "run_here", "stop_local_nodes"]

#: ``_run``'s answer when the node must start again in a new OS process image.
_RESTART = -1


async def _until_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _say(text: str) -> None:
    print(text, flush=True)


def _prepare(
    root: Path, release: str | None, config: Path | None
) -> tuple[SourceTree | None, str | None, SysConfig, ReleasesFile | None]:
    """What ``run`` boots: a source tree's embedded release, or a package on a bare root."""
    if release is not None and release.endswith(".tar.gz"):
        package = Path(release).resolve()
        first = None
        if read_releases(root) is None:
            own = read_sys_config(config or root / "sys.config")  # trusted keys: the root's only
            _say(f"setting up {root} from {package.name}")
            first = install_package(root, package, TrustedKeys(tuple(own.node.trusted_keys)))
        else:
            _say(f"{root} is set up already: booting its permanent release ({package.name} unused)")
        return None, None, node_config(root, config), first
    tree = SourceTree(root, config)
    return tree, release or tree.sys_config.node.release, node_config(root, config), None


async def _run(root: Path, release: str | None, config: Path | None) -> int:
    with NodeLock(root):  # before anything is unpacked or booted
        return await _run_locked(root, release, config)


async def _run_locked(root: Path, release: str | None, config: Path | None) -> int:
    tree, embedded, sys_config, first = _prepare(root, release, config)
    settings = sys_config.node
    restarts = os.environ.get(RESTARTS_ENV)
    async with kernel.Node(name=settings.name) as node, anyio.create_task_group() as group:
        services = [control_service(settings.control_socket)]

        def booted(vsn: str) -> None:
            notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving release {vsn}")

        boot = functools.partial(
            run_node,
            root,
            tree,
            embedded,
            services,
            booted,
            config=sys_config,
            first=first,
            read_config=functools.partial(node_config, root, config),
        )

        async def main() -> object:
            me = kernel.self()

            async def on_signal() -> None:
                # the receiver stays open for the node's whole life: a second Ctrl-C while
                # stopping must not turn into a KeyboardInterrupt in the middle of a shutdown
                with anyio.open_signal_receiver(
                    signal.SIGINT, signal.SIGTERM, signal.SIGHUP
                ) as signals:
                    async for received in signals:
                        if received == signal.SIGHUP:
                            reopen_logs()
                            continue
                        _say("node stopping")
                        notify("STOPPING=1")
                        kernel.send(me, ("stop",))

            group.start_soon(on_signal)
            return await boot()

        note = f", restarted by heart ({restarts})" if restarts and restarts != "0" else ""
        _say(f"node {settings.name}: starting (root {root}{note})")
        reason = await node.run_process(main)
        group.cancel_scope.cancel()
    if reason == RESTART_NEW_PROCESS:
        _say(f"node {settings.name}: restarting in a new process (every process's state is lost)")
        return _RESTART
    if reason is not None:
        _say(f"node {settings.name} stopped: {reason!r}")
        return 1
    return 0


def _build(args: argparse.Namespace) -> None:
    tree = SourceTree(args.root, args.config)
    wanted = [parse_release_name(text) for text in args.releases] or [
        (spec.name, spec.vsn) for spec in tree.release_specs()
    ]
    out = args.out or tree.root / "build"
    key = read_signing_key(args.sign) if args.sign is not None else None
    table = packages_table(out)
    console = Console()
    for name, vsn in wanted:
        with console.status(f"building {name} {vsn}"):
            built = build_package(
                tree,
                name,
                vsn,
                out,
                up_from=args.up_from,
                down_to=args.down_to,
                default_appups=args.default_appups,
                signing_key=key,
                bundle_deps=args.bundle_deps,
                wheels=args.wheels,
            )
        for note in built.notes:
            console.print(f"[yellow]default appup[/yellow] {note}")
        add_package_row(table, built)
    console.print(table)
    if key is not None:
        console.print(f"signed by {public_key_text(key)} (a .sig beside each package)")


def _dev(args: argparse.Namespace) -> int:
    if args.root is None:
        if args.release is not None or args.config is not None:
            raise ReleaseError("--release and --config go with --root, not --path")
        anyio.run(_dev_paths, args.path, args.start, args.grace, backend="asyncio")
        return 0
    if args.start is not None:
        raise ReleaseError("--start goes with --path: with --root the release's applications start")
    release = prepare(args.root, args.release, args.config)
    return anyio.run(_dev_release, release, args.grace, backend="asyncio")


async def _dev_paths(paths: list[Path], start: str | None, grace: float) -> None:
    for path in paths:
        names = code_server.add_path(path)
        _say(f"watching {path.resolve()} ({', '.join(names) or 'no modules yet'})")
    target = resolve_start(start) if start is not None else None  # a typo: one line
    roots = [p.resolve() for p in paths]

    def ready() -> None:
        _say("ready: edit a file to reload it")

    async with kernel.Node(name="dev") as node, anyio.create_task_group() as group:
        if target is None:

            def report(event: ReloadEvent) -> None:
                _say(str(event))

            kernel.spawn(functools.partial(watch, roots, grace=grace, report=report, ready=ready))
            await _until_signal()
            return

        async def main() -> None:
            me = kernel.self()

            async def on_signal() -> None:
                await _until_signal()
                kernel.send(me, ("stop",))

            group.start_soon(on_signal)
            await serve_start(*target, roots, grace=grace, say=_say, ready=ready)

        try:
            await node.run_process(main)
        finally:
            group.cancel_scope.cancel()


async def _dev_release(release: DevRelease, grace: float) -> int:
    for warning in release.warnings:
        _say(f"warning: {warning}")
    _say(f"dev: release {release.name} {release.vsn} from its sources")
    for app, lib_dir in release.lib_dirs.items():
        _say(f"watching {lib_dir} ({app})")

    def ready() -> None:
        _say("ready: edit a file to reload it")

    node_name = release.sys_config.node.name
    async with kernel.Node(name=node_name) as node, anyio.create_task_group() as group:

        async def main() -> object:
            me = kernel.self()

            async def on_signal() -> None:
                # open for the node's whole life: a second Ctrl-C while the applications
                # stop must not become a KeyboardInterrupt in the middle of their stop
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        _say("dev node stopping")
                        kernel.send(me, ("stop",))

            group.start_soon(on_signal)
            return await serve(release, grace=grace, say=_say, ready=ready, explain=in_words)

        try:
            reason = await node.run_process(main)
        finally:
            group.cancel_scope.cancel()
    if reason is not None:
        _say(f"dev node stopped: {reason!r}")
        return 1
    return 0


def _start_nodes(args: argparse.Namespace, log_args: list[str]) -> int:
    root = args.root.resolve()
    for given, flag in ((args.foreground, "--foreground"), (args.log_file, "--log-file")):
        if given:
            raise LocalClusterError(
                root, f"{flag} does not go with --nodes (each node logs under its own root)"
            )
    config = args.config.resolve() if args.config is not None else None
    with Console(stderr=True).status(f"starting {args.nodes} nodes, each under its heart"):
        nodes = start_nodes(
            root, args.nodes, release=args.release, config=config, log_args=log_args
        )
    rows = [("node", "root", "OS pid", "HTTP port")]
    rows += [
        (n.name, str(n.root), str(n.node_pid), ",".join(map(str, n.http_ports)) or "-")
        for n in nodes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:  # plain columns that never wrap: paths stay whole for scripts
        _say(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )
    _say(f"{len(nodes)} nodes serving {nodes[0].status.removeprefix('serving ')}")
    _say(f"connected; drive the cluster with: server cluster releases --root {nodes[0].root}")
    _say(f"stop them all with: server stop --root {root}")
    return 0


def stop_local_nodes(root: Path) -> int:
    with Console(stderr=True).status("stopping every node"):
        stopped = stop_nodes(root)
    for node in stopped:
        how = f"stopped (heart pid {node.heart_pid})" if node.heart_pid else "was not running"
        _say(f"{node.root.name}: {how}")
    return 0


def node_logging(args: argparse.Namespace) -> None:
    """``[node] log_level`` and ``log_format`` of the node's sys.config, unless given as flags.

    Raises:
        SpecError: the sys.config is malformed.
    """
    if args.log_level is not None and args.log_format is not None:
        return
    settings = node_config(args.root.resolve(), args.config).node
    configure_logging(
        args.log_level or settings.log_level,
        log_format=args.log_format or settings.log_format,
        log_file=args.log_file,
    )


def _log_flags(args: argparse.Namespace) -> list[str]:
    """The logging flags given, for the nodes started (the rest each node's sys.config says)."""
    flags = ["--log-level", args.log_level] if args.log_level is not None else []
    return flags + (["--log-format", args.log_format] if args.log_format is not None else [])


def _start(args: argparse.Namespace) -> int:
    if args.nodes is not None:
        return _start_nodes(args, _log_flags(args))
    run_args: list[str] = []
    if args.release is not None:
        release = args.release
        if release.endswith(".tar.gz"):
            release = str(Path(release).resolve())
        run_args += ["--release", release]
    if args.config is not None:
        run_args += ["--config", str(args.config.resolve())]
    log_args = _log_flags(args)
    if args.log_file is not None:
        log_args += ["--log-file", str(Path(args.log_file).resolve())]
    if args.foreground:
        return run_heart_on_root(
            args.root,
            log_args=log_args,
            ready_fd=args.ready_fd,
            config=args.config,
            run_args=run_args,
        )
    with Console(stderr=True).status("starting the node under its heart"):
        started = start_detached(args.root, log_args=log_args, start_args=run_args)
    _say(f"node {started.status}: heart pid {started.heart_pid}, node pid {started.node_pid}")
    _say(f"logs: {started.log_dir / 'heart.log'} and {started.log_dir / 'node.log'}")
    return 0


def run_here(args: argparse.Namespace) -> int:
    """Run one of ``HERE``'s commands; its exit status.

    Raises:
        ServerError: the command failed (``main`` prints it as one line).
    """
    if args.command == "run":
        code = anyio.run(_run, args.root.resolve(), args.release, args.config, backend="asyncio")
        if code == _RESTART:  # an install by restart: the same pid, a new interpreter
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, "-m", "server", *sys.argv[1:]])
        return code
    if args.command == "build":
        _build(args)
    elif args.command == "new":
        written = new_project(args.path, args.name)
        _say(f"created {args.path} ({len(written) + 1} files): cd {args.path} && make test")
    elif args.command == "keygen":
        public = generate_key_pair(args.out)
        _say(f"wrote {args.out} (private: keep it secret) and {args.out}.pub")
        _say(f"trust it in sys.config: [node] trusted_keys = [{public!r}]")
    elif args.command == "dev":
        return _dev(args)
    elif args.command == "start":
        return _start(args)
    return 0
