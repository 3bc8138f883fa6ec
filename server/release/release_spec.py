"""The release spec: a named, versioned set of applications with exact versions.

``releases/<name>-<vsn>.toml``::

    name = "demo"
    vsn = "2.0.0"
    runtime = "3.11"                  # optional: the Python version it was built for

    [[applications]]
    name = "counter"
    vsn = "2.0.0"

    [[applications]]
    name = "stats"
    vsn = "1.0.0"
    type = "permanent"                # permanent (default), transient, temporary, load, none
"""

from __future__ import annotations

from typing import Literal

import pydantic

from server.app.app_spec import Vsn
from server.release.appup import AppName
from server.spec_files import SPEC_MODEL_CONFIG

__all__ = ["ReleaseApp", "ReleaseSpec", "StartType"]

StartType = Literal["permanent", "transient", "temporary", "load", "none"]


class ReleaseApp(pydantic.BaseModel):
    """One application of a release, at an exact version."""

    model_config = SPEC_MODEL_CONFIG

    name: AppName
    vsn: Vsn
    type: StartType = "permanent"


class ReleaseSpec(pydantic.BaseModel):
    """A release: its name, version and applications (in boot order)."""

    model_config = SPEC_MODEL_CONFIG

    name: AppName
    vsn: Vsn
    runtime: str | None = None
    applications: list[ReleaseApp]

    @pydantic.model_validator(mode="after")
    def _unique(self) -> ReleaseSpec:
        names = [app.name for app in self.applications]
        if len(set(names)) != len(names):
            raise ValueError("an application is listed twice")
        if not names:
            raise ValueError("a release needs at least one application")
        return self

    def app(self, name: str) -> ReleaseApp | None:
        """The entry of application ``name``, or None."""
        return next((app for app in self.applications if app.name == name), None)
