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

from typing import TYPE_CHECKING, Annotated, Literal

import pydantic

from server.errors import SpecError
from server.spec_files import SPEC_MODEL_CONFIG, load_toml, parse_model

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["NodeSettings", "SysConfig", "read_sys_config"]


class NodeSettings(pydantic.BaseModel):
    """The ``[node]`` table."""

    model_config = SPEC_MODEL_CONFIG

    name: str = "node"
    release: str | None = None
    control_socket: str = "run/control.sock"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    apps_dir: str = "apps"
    heart_max_restarts: Annotated[int, pydantic.Field(ge=0)] = 5
    heart_period: Annotated[float, pydantic.Field(gt=0)] = 60.0


class SysConfig(pydantic.BaseModel):
    """The whole file: node settings plus env overrides per application."""

    model_config = pydantic.ConfigDict(frozen=True)

    node: NodeSettings = NodeSettings()
    env: dict[str, dict[str, pydantic.JsonValue]] = {}


def read_sys_config(path: Path) -> SysConfig:
    """Read ``sys.config``; a missing file gives the defaults.

    Raises:
        SpecError: the file is malformed (each problem named by its table and key).
    """
    if not path.exists():
        return SysConfig()
    data = load_toml(path)
    node = parse_model(NodeSettings, data.pop("node", {}), str(path) + " [node]")
    problems = [
        (name, f"an application's env overrides must be a table, got {type(value).__name__}")
        for name, value in data.items()
        if not isinstance(value, dict)
    ]
    if problems:
        raise SpecError(str(path), problems)
    env = parse_model(_EnvTables, {"tables": data}, str(path)).tables
    return SysConfig(node=node, env=env)


class _EnvTables(pydantic.BaseModel):
    model_config = SPEC_MODEL_CONFIG

    tables: dict[
        Annotated[str, pydantic.StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")],
        dict[str, pydantic.JsonValue],
    ]
