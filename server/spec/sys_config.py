"""``sys.config``: node settings and per-application env overrides (TOML).

::

    [node]
    name = "demo"                     # the node's name
    release = "demo-1.0.0"            # release spec booted when the root has no RELEASES
    control_socket = "run/control.sock"   # relative to the root
    log_level = "INFO"
    apps_dir = "apps"                 # where the sources of the embedded release live
    heart_max_restarts = 5            # the heart gives up after this many restarts ...
    heart_period = 60.0               # ... within this many seconds

    [counter]                         # every other table: env overrides for that app
    port = 8080
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic

from server.errors import SpecError
from server.spec.files import SPEC_MODEL_CONFIG, AppName, load_toml, validation_problems

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["NodeSettings", "SysConfig", "read_sys_config"]

_Text = Annotated[str, pydantic.StringConstraints(min_length=1)]


class NodeSettings(pydantic.BaseModel):
    """The ``[node]`` table."""

    model_config = SPEC_MODEL_CONFIG

    name: _Text = "node"
    release: _Text | None = None
    control_socket: _Text = "run/control.sock"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    apps_dir: _Text = "apps"
    heart_max_restarts: Annotated[int, pydantic.Field(ge=0)] = 5
    heart_period: Annotated[float, pydantic.Field(gt=0)] = 60.0


class SysConfig(pydantic.BaseModel):
    """The whole file: node settings plus env overrides per application."""

    model_config = SPEC_MODEL_CONFIG

    node: NodeSettings = NodeSettings()
    env: dict[AppName, dict[str, pydantic.JsonValue]] = {}


_ENV_TABLE: pydantic.TypeAdapter[dict[str, pydantic.JsonValue]] = pydantic.TypeAdapter(
    dict[str, pydantic.JsonValue], config=pydantic.ConfigDict(strict=True)
)
_APP_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def read_sys_config(path: Path) -> SysConfig:
    """Read ``sys.config``; a missing file gives the defaults.

    Raises:
        SpecError: the file is unreadable or malformed (each problem named by its table and
            key: ``node.log_level``, ``counter.port``).
    """
    if not path.exists():
        return SysConfig()
    data = load_toml(path)
    problems: list[tuple[str, str]] = []
    node = NodeSettings()
    env: dict[str, dict[str, Any]] = {}
    for table, value in data.items():
        if not isinstance(value, dict):
            what = "the node settings" if table == "node" else "an application's env overrides"
            problems.append((table, f"{what} must be a table, got {type(value).__name__}"))
        elif table == "node":
            try:
                node = NodeSettings.model_validate(value)
            except pydantic.ValidationError as exc:
                problems += validation_problems(exc, value, "node")
        elif not _APP_NAME.fullmatch(table):
            problems.append((table, "expected [node] or an application name as table name"))
        else:
            try:
                env[table] = _ENV_TABLE.validate_python(value)
            except pydantic.ValidationError as exc:
                problems += validation_problems(exc, value, table)
    if problems:
        raise SpecError(str(path), problems)
    return SysConfig(node=node, env=env)
