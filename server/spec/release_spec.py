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

from typing import Annotated, Literal

import pydantic

from server.spec.files import SPEC_MODEL_CONFIG, AppName, Vsn

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
    runtime: Annotated[str, pydantic.StringConstraints(min_length=1)] | None = None
    applications: list[ReleaseApp]

    @pydantic.field_validator("applications")
    @classmethod
    def _unique(cls, applications: list[ReleaseApp]) -> list[ReleaseApp]:
        if not applications:
            raise ValueError("a release needs at least one application")
        names = [app.name for app in applications]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"each application is listed once; listed twice: {', '.join(twice)}")
        return applications

    def app(self, name: str) -> ReleaseApp | None:
        """The entry of application ``name``, or None."""
        return next((app for app in self.applications if app.name == name), None)
