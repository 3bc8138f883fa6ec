"""The ``server`` command (placeholder until the control CLI lands)."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``server`` console script."""
