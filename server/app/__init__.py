"""Applications: specs, the application controller, and application environments."""

from __future__ import annotations

from server.app.controller import (
    RunningApplication,
    ensure_all_started,
    load_application,
    start_application,
    stop_application,
    unload_application,
    which_applications,
)
from server.app.env import get_all_env, get_env
from server.spec.app_spec import AppSpec, StartCallback

__all__ = [
    "AppSpec",
    "RunningApplication",
    "StartCallback",
    "ensure_all_started",
    "get_all_env",
    "get_env",
    "load_application",
    "start_application",
    "stop_application",
    "unload_application",
    "which_applications",
]
