"""The ``server`` command: run a node, or run one that reloads code as you edit it."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from rich.console import Console
from rich.table import Table

from server import code_server, kernel
from server._logging import configure_logging
from server.cli_control import COMMANDS, add_control_commands, run_control_command
from server.commands import control_service
from server.dev.reloader import ReloadEvent, watch
from server.errors import ServerError
from server.heart import run_heart_on_root, start_detached
from server.release.boot import parse_release_name
from server.release.node import run_node
from server.release.package import build_package
from server.release.signature import generate_key_pair, public_key_text, read_signing_key
from server.release.source_tree import SourceTree

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server", description="A hot code-loading application server for Python."
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="boot a node on the release named in sys.config, until Ctrl-C"
    )
    run.add_argument("--root", type=Path, default=Path.cwd(), help="the node's root directory")
    run.add_argument("--release", help="boot this release (<name>-<vsn>) instead")
    run.add_argument("--config", type=Path, help="sys.config (default <root>/sys.config)")

    build = commands.add_parser(
        "build", help="build release packages (.tar.gz + .sha256) with their relups"
    )
    build.add_argument(
        "releases", nargs="*", metavar="NAME-VSN", help="releases to build (default: all)"
    )
    build.add_argument("--root", type=Path, default=Path.cwd(), help="the source tree")
    build.add_argument("--config", type=Path, help="sys.config (default <root>/sys.config)")
    build.add_argument("--out", type=Path, help="output directory (default: <root>/build)")
    build.add_argument(
        "--up-from", action="append", metavar="VSN", help="older release to upgrade from"
    )
    build.add_argument(
        "--down-to", action="append", metavar="VSN", help="older release to downgrade to"
    )
    build.add_argument(
        "--default-appups",
        action="store_true",
        help="give changed modules no appup mentions a default instruction (and say which)",
    )
    build.add_argument(
        "--sign", type=Path, metavar="KEY", help="sign each package with this Ed25519 key (PEM)"
    )
    keygen = commands.add_parser(
        "keygen", help="create a signing key pair: OUT (private, 0600) and OUT.pub (public)"
    )
    keygen.add_argument("out", type=Path, metavar="OUT", help="the private key file to create")

    dev = commands.add_parser(
        "dev", help="run a node that reloads application modules when their files change"
    )
    dev.add_argument(
        "--path",
        type=Path,
        action="append",
        required=True,
        help="an application source root to load from and watch (repeatable)",
    )
    dev.add_argument(
        "--start",
        metavar="MODULE[:FUNCTION]",
        help="an async function to run as the first process (default function: main)",
    )
    dev.add_argument(
        "--grace",
        type=float,
        default=2.0,
        help="seconds a process may stay in old code before it is purged (default 2)",
    )

    start = commands.add_parser(
        "start", help="run a node under a heart that restarts it when it dies (in the background)"
    )
    start.add_argument("--root", type=Path, default=Path.cwd(), help="the node's root directory")
    start.add_argument(
        "--foreground",
        action="store_true",
        help="stay attached: the node's output goes to this terminal (for systemd)",
    )
    start.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    add_control_commands(commands)
    return parser


async def _until_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _say(text: str) -> None:
    print(text, flush=True)


async def _run(root: Path, release: str | None, config: Path | None) -> int:
    tree = SourceTree(root, config)
    settings = tree.sys_config.node
    embedded = release or settings.release
    restarts = os.environ.get("SERVER_HEART_RESTARTS")
    async with kernel.Node(name=settings.name) as node, anyio.create_task_group() as group:
        services = [control_service(settings.control_socket)]
        boot = functools.partial(run_node, tree.root, tree, embedded, services)

        async def main() -> object:
            me = kernel.self()

            async def on_signal() -> None:
                # the receiver stays open for the node's whole life: a second Ctrl-C while
                # stopping must not turn into a KeyboardInterrupt in the middle of a shutdown
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        _say("node stopping")
                        kernel.send(me, ("stop",))

            group.start_soon(on_signal)
            return await boot()

        note = f", restarted by heart ({restarts})" if restarts and restarts != "0" else ""
        _say(f"node {settings.name}: starting (root {tree.root}{note})")
        reason = await node.run_process(main)
        group.cancel_scope.cancel()
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
    table = Table(title=f"release packages in {out}")
    for column in ("package", "sha256", "size", "relup up from", "relup down to"):
        table.add_column(column)
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
            )
        for note in built.notes:
            console.print(f"[yellow]default appup[/yellow] {note}")
        table.add_row(
            built.path.name,
            built.sha256[:16],
            f"{built.size:,} B",
            ", ".join(e.vsn for e in built.relup.up) or "-",
            ", ".join(e.vsn for e in built.relup.down) or "-",
        )
    console.print(table)
    if key is not None:
        console.print(f"signed by {public_key_text(key)} (a .sig beside each package)")


async def _dev(paths: list[Path], start: str | None, grace: float) -> None:
    for path in paths:
        names = code_server.add_path(path)
        _say(f"watching {path.resolve()} ({', '.join(names) or 'no modules yet'})")
    async with kernel.Node(name="dev"):
        if start is not None:
            module_name, _, function = start.partition(":")
            module = __import__(module_name, fromlist=["_"])
            kernel.spawn(getattr(module, function or "main"))

        def report(event: ReloadEvent) -> None:
            _say(str(event))

        def ready() -> None:
            _say("ready: edit a file to reload it")

        roots = [p.resolve() for p in paths]
        kernel.spawn(functools.partial(watch, roots, grace=grace, report=report, ready=ready))
        await _until_signal()


def _start(args: argparse.Namespace) -> int:
    if args.foreground:
        return run_heart_on_root(args.root, log_level=args.log_level, ready_fd=args.ready_fd)
    started = start_detached(args.root, log_level=args.log_level)
    _say(f"heart started: pid {started.heart_pid}, node pid {started.node_pid}")
    _say(f"logs: {started.log_dir / 'heart.log'} and {started.log_dir / 'node.log'}")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``server`` console script."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        if args.command == "run":
            raise SystemExit(
                anyio.run(_run, args.root, args.release, args.config, backend="asyncio")
            )
        if args.command == "build":
            _build(args)
        elif args.command == "keygen":
            public = generate_key_pair(args.out)
            _say(f"wrote {args.out} (private: keep it secret) and {args.out}.pub")
            _say(f"trust it in sys.config: [node] trusted_keys = [{public!r}]")
        elif args.command == "dev":
            anyio.run(_dev, args.path, args.start, args.grace, backend="asyncio")
        elif args.command == "start":
            raise SystemExit(_start(args))
        elif args.command in COMMANDS:
            raise SystemExit(run_control_command(args))
    except ServerError as exc:
        print(f"server: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
