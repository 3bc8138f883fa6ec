"""The release the node is running: set at boot, and by the release handler at install.

Any process reads it without a message (like OTP's ``release_handler:which_releases``
answered from a table); only the boot and the release handler write it.
"""

from __future__ import annotations

__all__ = ["current_release", "current_vsn", "set_current_release"]

_current: tuple[str, str] | None = None


def current_release() -> tuple[str, str] | None:
    """``(name, vsn)`` of the running release, or None before one is booted."""
    return _current


def current_vsn() -> str | None:
    """The version of the running release, or None before one is booted."""
    return _current[1] if _current else None


def set_current_release(name: str, vsn: str) -> None:
    """Record the running release (the boot and the release handler call this)."""
    global _current  # the one writer of the node-wide record
    _current = (name, vsn)
