"""The ``server`` command: run a node, build packages, reload while editing, start a heart.

``main`` parses the command line (``_parser``), runs the command and turns a
``ServerError`` into one line on stderr and exit code 1. The commands that talk to a
running node are in ``_control``; what they print is in ``_output``; the commands that run
here (``run``, ``build``, ``dev``, ``start``...) are in ``_local``, imported only for them,
so that a command talking to a node starts without loading one.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli._control import run_control_command
from server.cli._failure import first_server_error, in_words
from server.cli._logging import configure_logging
from server.cli._parser import parser
from server.cli._top import run_top
from server.errors import LocalClusterError, ServerError
from server.node import COMMANDS

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["main"]

#: the commands ``_local.run_here`` runs
_HERE = frozenset({"run", "build", "new", "keygen", "dev", "start"})


def _local_cluster_root(args: argparse.Namespace) -> Path | None:
    """``--root`` when it is a root of ``server start --nodes N`` (not a node's own)."""
    root = Path(args.root).resolve()
    if args.config is not None or (root / "releases").exists():  # a node's own root
        return None
    from server.heart import local_node_roots  # only here: the heart is not a client's

    return root if local_node_roots(root) is not None else None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``server`` console script."""
    args = parser().parse_args(argv)
    configure_logging(
        args.log_level or "INFO", log_format=args.log_format or "text", log_file=args.log_file
    )
    try:
        if args.command in _HERE:
            from server.cli import _local  # what a node is made of: only for these

            if args.command == "run" or (args.command == "start" and args.nodes is None):
                _local.node_logging(args)
            raise SystemExit(_local.run_here(args))
        if args.command in COMMANDS and (multi := _local_cluster_root(args)) is not None:
            if args.command != "stop":
                raise LocalClusterError(
                    multi, f"it holds several nodes: use --root {multi / 'node-1'} (or node-2 ...)"
                )
            from server.cli import _local

            raise SystemExit(_local.stop_local_nodes(multi))
        if args.command == "top":
            raise SystemExit(run_top(args))
        if args.command in COMMANDS:
            raise SystemExit(run_control_command(args))
    except ServerError as exc:
        print(f"server: {in_words(exc)}", file=sys.stderr)
        raise SystemExit(1) from None
    except BaseExceptionGroup as group:  # a node's task group ended on a server error
        error = first_server_error(group)
        if error is None:
            raise
        logging.getLogger("server").debug("the node failed", exc_info=group)
        print(f"server: {in_words(error)} (the log above has the reports)", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
