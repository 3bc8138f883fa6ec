"""The ``server`` command: run a node, or run one that reloads code as you edit it."""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from server import code_server, kernel
from server._logging import configure_logging
from server.dev.reloader import ReloadEvent, watch
from server.errors import ServerError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server", description="A hot code-loading application server for Python."
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a node in the foreground until Ctrl-C")
    run.add_argument("--root", type=Path, default=Path.cwd(), help="the node's root directory")

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
    return parser


async def _until_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _say(text: str) -> None:
    print(text, flush=True)


async def _run(root: Path) -> None:
    async with kernel.Node(name="node"):
        _say(f"node running (root {root}); Ctrl-C stops it")
        await _until_signal()
        _say("node stopping")


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


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``server`` console script."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        if args.command == "run":
            anyio.run(_run, args.root, backend="asyncio")
        elif args.command == "dev":
            anyio.run(_dev, args.path, args.start, args.grace, backend="asyncio")
    except ServerError as exc:
        print(f"server: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
