"""Releases: specs, appups and relups, the package builder, the boot, the running release."""

from __future__ import annotations

from server.release._faults import hook as fault_hook
from server.release.current import current_release, current_vsn, set_current_release

__all__ = ["current_release", "current_vsn", "fault_hook", "set_current_release"]
