"""``python -m server``: the same as the ``server`` command."""

from __future__ import annotations

from server.cli import main

main()
