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

    [asgi]                            # optional: serve an ASGI application (FastAPI...)
    app = "counter.api:app"           # module:attribute, the module listed in modules
    port = 8000                       # host and port: the env's host/port win when set
    purge_grace = 30.0                # optional: end old-version requests 30 s after an install

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

__all__ = ["ASGI_CALLBACK", "AppSpec", "AsgiSpec", "StartCallback", "Vsn"]


class StartCallback(pydantic.BaseModel):
    """The application callback module and the argument of its ``start``."""

    model_config = SPEC_MODEL_CONFIG

    module: ModuleName
    args: pydantic.JsonValue = None


#: The application callback module that serves an ``[asgi]`` application (in ``server.net``).
ASGI_CALLBACK = "server.net.asgi_application"


class AsgiSpec(pydantic.BaseModel):
    """The ``[asgi]`` table: an ASGI application the node serves for this application.

    ``app`` is ``module:attribute``; the module must be one of the application's modules
    (managed code: an install of a new version of it serves the next request). ``host``
    and ``port`` are where it listens unless the application's env sets ``host`` /
    ``port`` (so sys.config and the environment can move it). The application's own
    ``mod``, when there is one, is started first, under the same top supervisor.
    """

    model_config = SPEC_MODEL_CONFIG

    app: Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")]
    host: str = "127.0.0.1"
    port: Annotated[int, pydantic.Field(ge=0, le=65535)] = 8000
    root_path: str = ""
    websocket_handler: ModuleName | None = None  # a native handler for every WebSocket
    shutdown_timeout: Annotated[float, pydantic.Field(gt=0)] = 30.0
    #: seconds after an install before requests and WebSockets still running the old
    #: version are ended (WebSockets with 1012); None: they run until the next install
    purge_grace: Annotated[float, pydantic.Field(ge=0)] | None = None

    @property
    def module(self) -> str:
        """The module the application attribute lives in."""
        return self.app.partition(":")[0]


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
    asgi: AsgiSpec | None = None
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
    def _asgi_modules_listed(self) -> AppSpec:
        asgi = self.asgi
        if asgi is None:
            return self
        for module in (asgi.module, asgi.websocket_handler):
            if module is not None and module not in self.modules:
                raise ValueError(f"asgi: module {module} must be listed in modules")
        return self

    @property
    def start_callback(self) -> StartCallback | None:
        """What starts the application: ``mod``, or the server's callback for ``[asgi]``.

        That callback starts ``mod`` first (when there is one), then serves the app.
        """
        if self.asgi is None:
            return self.mod
        args: dict[str, pydantic.JsonValue] = {
            "application": self.name,
            "asgi": self.asgi.model_dump(),
            "mod": self.mod.model_dump() if self.mod is not None else None,
        }
        return StartCallback(module=ASGI_CALLBACK, args=args)

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
