r"""The application spec: one application version, its modules, start callback, env, appup.

One TOML file per application version (``appspecs/<app>-<vsn>.toml`` in a source tree,
``lib/<app>-<vsn>/app.toml`` in a release package)::

    name = "counter"
    vsn = "1.1.0"
    description = "HTTP counters"
    modules = ["counter.app", "counter.server"]
    registered = ["counter_server"]
    applications = []                 # the applications it depends on
    requires = ["requests>=2.31"]     # Python distributions it imports (PEP 508), not managed

    [mod]                             # the callback module, started with start(args)
    module = "counter.app"
    args = {}

    [env]
    port = 8080

    [env_schema]                      # optional: the env's keys and types (env_schema.py)
    port = { type = "int", ge = 1, le = 65535 }

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

from server.spec.appup import AppUp
from server.spec.env_schema import EnvField, EnvType, check_env
from server.spec.files import SPEC_MODEL_CONFIG, AppName, ModuleName, Vsn
from server.spec.requirements import check_requirement

__all__ = ["AppSpec", "StartCallback", "Vsn"]


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
    env_schema: dict[str, EnvField | EnvType] = {}
    requires: list[Annotated[str, pydantic.AfterValidator(check_requirement)]] = []
    appup: AppUp = AppUp()

    @pydantic.field_validator("modules")
    @classmethod
    def _modules_once(cls, modules: list[str]) -> list[str]:
        twice = sorted({module for module in modules if modules.count(module) > 1})
        if twice:
            raise ValueError(f"each module is listed once; listed twice: {', '.join(twice)}")
        return modules

    @pydantic.field_validator("applications")
    @classmethod
    def _dependencies(cls, applications: list[str], info: pydantic.ValidationInfo) -> list[str]:
        if info.data.get("name") in applications:
            raise ValueError(f"application {info.data['name']} cannot depend on itself")
        twice = sorted({app for app in applications if applications.count(app) > 1})
        if twice:
            raise ValueError(f"each dependency is listed once; listed twice: {', '.join(twice)}")
        return applications

    @pydantic.field_validator("mod")
    @classmethod
    def _mod_listed(
        cls, mod: StartCallback | None, info: pydantic.ValidationInfo
    ) -> StartCallback | None:
        modules = info.data.get("modules")
        if mod is not None and modules is not None and mod.module not in modules:
            raise ValueError(f"mod.module {mod.module} must be listed in modules")
        return mod

    @pydantic.model_validator(mode="after")
    def _env_fits_its_schema(self) -> AppSpec:
        problems = check_env(self.name, self.env_schema, self.env, complete=False)
        if problems:
            key, message = problems[0]
            raise ValueError(f"env.{key}: {message} (see env_schema)")
        return self

    @property
    def key(self) -> str:
        """``name-vsn``, the application's directory name in a release."""
        return f"{self.name}-{self.vsn}"
