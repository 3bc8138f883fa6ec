"""``app_cb`` plus a plain ``config_change`` that reports and answers ``"ok"``.

A new key ``explode`` makes it raise instead, to show one failing callback stops no other.
"""

from __future__ import annotations

from typing import Any

from tests.app.callbacks import app_cb
from tests.app.callbacks.app_cb import prep_stop, start, stop

__all__ = ["config_change", "prep_stop", "start", "stop"]


def config_change(changed: dict[str, Any], new: dict[str, Any], removed: list[str]) -> str:
    app_cb.report("config_change", __name__, changed, new, removed)
    if new.get("explode"):
        raise RuntimeError("config_change refused")
    return "ok"
