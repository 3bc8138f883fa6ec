"""The ``server`` command: argument parsing, the control client side, and what it prints.

``main`` is the console script's entry point (``server = "server.cli:main"``).
"""

from __future__ import annotations

from server.cli._main import main

__all__ = ["main"]
