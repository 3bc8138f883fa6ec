"""The ``server`` command line: every sub-command and its options, in one parser.

The control commands' sub-commands are built from the node's one command table
(``server.node.COMMANDS``): each takes its positional argument when it has one, ``--root``
(the node's root; default the current directory), ``--config`` (default
``<root>/sys.config``, where the socket's path is set) and ``--json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from server import __version__
from server.node import COMMANDS

__all__ = ["parser"]


def parser() -> argparse.ArgumentParser:
    """The parser of ``server [--log-level LEVEL] COMMAND ...``."""
    top = argparse.ArgumentParser(
        prog="server", description="A hot code-loading application server for Python."
    )
    top.add_argument(
        "--log-level", help="logging level (default: [node] log_level of sys.config, or INFO)"
    )
    top.add_argument("--version", action="version", version=f"server {__version__}")
    top.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text lines or one JSON object per line (default: [node] log_format of "
        "sys.config, or text)",
    )
    top.add_argument(
        "--log-file",
        metavar="PATH",
        help="append the logs to PATH instead of stderr (reopened on SIGHUP, for rotation)",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="boot a node on the release named in sys.config, until Ctrl-C"
    )
    run.add_argument("--root", type=Path, default=Path.cwd(), help="the node's root directory")
    run.add_argument(
        "--release",
        metavar="NAME-VSN|PACKAGE",
        help="boot this release (<name>-<vsn>) instead; or set up a root that has no release "
        "from a package (<name>-<vsn>.tar.gz, its .sha256 beside it) and boot it",
    )
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
    build.add_argument(
        "--bundle-deps",
        action="store_true",
        help="bundle a wheel of each Python requirement of the applications (no index needed "
        "on the target)",
    )
    build.add_argument(
        "--wheels", type=Path, metavar="DIR", help="with --bundle-deps: take wheels from DIR only"
    )
    new = commands.add_parser(
        "new", help="create a project: one application, its spec, a release, a test"
    )
    new.add_argument("path", type=Path, metavar="PATH", help="the folder to create (new or empty)")
    new.add_argument("--name", help="the project's name (default: the folder's name)")
    keygen = commands.add_parser(
        "keygen", help="create a signing key pair: OUT (private, 0600) and OUT.pub (public)"
    )
    keygen.add_argument("out", type=Path, metavar="OUT", help="the private key file to create")

    dev = commands.add_parser(
        "dev",
        help="run a source tree's release as the node would, reloading modules as their files "
        "change (or, with --path, watch bare source roots)",
    )
    where = dev.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--root",
        type=Path,
        help="a source tree (releases/, appspecs/, apps/, sys.config): boot its release's "
        "applications from their source folders and watch them",
    )
    where.add_argument(
        "--path",
        type=Path,
        action="append",
        help="an application source root to load from and watch (repeatable; with --start)",
    )
    dev.add_argument(
        "--release",
        metavar="NAME-VSN",
        help="with --root: run this release (default: [node] release of sys.config)",
    )
    dev.add_argument(
        "--config", type=Path, help="with --root: sys.config (default <root>/sys.config)"
    )
    dev.add_argument(
        "--start",
        metavar="MODULE[:FUNCTION]",
        help="with --path: an async function to run as the first process (default function: main)",
    )
    dev.add_argument(
        "--grace",
        type=float,
        default=2.0,
        help="seconds a process may stay in old code before it is purged (default 2)",
    )

    start = commands.add_parser(
        "start",
        help="run a node under a heart that restarts it when it dies (in the background); "
        "returns once the node serves",
    )
    start.add_argument("--root", type=Path, default=Path.cwd(), help="the node's root directory")
    start.add_argument(
        "--foreground",
        action="store_true",
        help="stay attached: the node's output goes to this terminal (for systemd)",
    )
    start.add_argument("--release", metavar="NAME-VSN|PACKAGE", help="as for run")
    start.add_argument("--config", type=Path, help="sys.config (default <root>/sys.config)")
    start.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    start.add_argument(
        "--nodes",
        type=int,
        metavar="N",
        help="start N nodes of the release under ROOT/node-1 ... ROOT/node-N, each under its "
        "heart, as one cluster listening on one HTTP port (the kernel spreads connections); "
        "--release is a package, or NAME-VSN built from the source tree here",
    )

    for command in COMMANDS.values():
        spelled = command.name.replace("_", "-")  # reload_config is typed reload-config
        sub = commands.add_parser(spelled, help=command.help, description=command.help)
        sub.set_defaults(command=command.name)
        if command.argument is not None:
            sub.add_argument(command.argument, help=f"the {command.argument}")
        if command.extra_argument is not None:
            sub.add_argument(
                command.extra_argument, nargs="?", help=f"the {command.extra_argument}"
            )
        for option, metavar, option_help in command.options:
            sub.add_argument(
                f"--{option.replace('_', '-')}",
                dest=f"option_{option}",
                metavar=metavar,
                help=option_help,
            )
        for flag, flag_help in command.flags:
            sub.add_argument(f"--{flag}", action="store_true", help=flag_help)
        sub.add_argument("--root", type=Path, default=Path.cwd(), help="the node's root")
        sub.add_argument("--config", type=Path, help="sys.config (default <root>/sys.config)")
        sub.add_argument(
            "--json", action="store_true", help="print the answer as JSON, for scripts"
        )
    return top
