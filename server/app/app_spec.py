r"""The application spec: one application version, its modules, start callback, env, appup.

One TOML file per application version (``appspecs/<app>-<vsn>.toml`` in a source tree,
``lib/<app>-<vsn>/app.toml`` in a release package)::

    name = "counter"
    vsn = "1.1.0"
    description = "HTTP counters"
    modules = ["counter.app", "counter.server"]
    registered = ["counter_server"]
    applications = []                 # the applications it depends on

    [mod]                             # the callback module, started with start(args)
    module = "counter.app"
    args = {}

    [env]
    port = 8080

    [[appup.up]]                      # how to come from 1.0.0 (or vsn_regex = "1\\.0\\..*")
    vsn = "1.0.0"
    instructions = [
      {op = "update", module = "counter.server", change = "advanced", extra = "v1_to_v11"},
    ]

    [[appup.down]]
    vsn = "1.0.0"
    instructions = [{op = "update", module = "counter.server", change = "advanced"}]
"""

from __future__ import annotations

from typing import Annotated

import pydantic

from server.release.appup import AppName, AppUp, ModuleName
from server.spec_files import SPEC_MODEL_CONFIG

__all__ = ["AppSpec", "StartCallback", "Vsn"]

Vsn = Annotated[str, pydantic.StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")]


class StartCallback(pydantic.BaseModel):
    """The application callback module and the argument of its ``start``."""

    model_config = SPEC_MODEL_CONFIG

    module: ModuleName
    args: pydantic.JsonValue = None


class AppSpec(pydantic.BaseModel):
    """One version of one application."""

    model_config = SPEC_MODEL_CONFIG

    name: AppName
    vsn: Vsn
    description: str = ""
    modules: list[ModuleName] = []
    registered: list[str] = []
    applications: list[AppName] = []
    mod: StartCallback | None = None
    env: dict[str, pydantic.JsonValue] = {}
    appup: AppUp = AppUp()

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> AppSpec:
        if self.name in self.applications:
            raise ValueError(f"application {self.name} cannot depend on itself")
        if len(set(self.modules)) != len(self.modules):
            raise ValueError("modules lists a module twice")
        if self.mod is not None and self.mod.module not in self.modules:
            raise ValueError(f"mod.module {self.mod.module} must be listed in modules")
        return self

    @property
    def key(self) -> str:
        """``name-vsn``, the application's directory name in a release."""
        return f"{self.name}-{self.vsn}"
