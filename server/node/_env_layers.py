"""The node's env layers, kept by the boot, shown by ``server env``, re-read by ``reload-config``.

The boot process holds one ``NodeEnv`` (its ``ENV_LAYERS_LABEL``): how to read the node's
own sys.config again, the environment's layer (fixed for the process's life), and the
layers of the release running now. ``reload_config`` re-reads the node's sys.config,
checks the merged env of the running release against its applications' schemas, installs
it in the application controller and runs each changed application's ``config_change``,
as an install does. The release handler's ``local_env`` is the same dict object, updated
in place, so the next install keeps the reloaded layer too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import anyio

from server import kernel
from server.app import controller
from server.errors import InstallRefused
from server.release import current_release
from server.release.installed import read_installed
from server.spec.env_schema import check_release_env
from server.spec.sys_config import ENV_PREFIX, merge_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from server.kernel import Pid
    from server.spec.sys_config import SysConfig

__all__ = ["ENV_LAYERS_LABEL", "NodeEnv", "reload_config"]

#: The boot process's label holding its ``NodeEnv``.
ENV_LAYERS_LABEL: Final = "env_layers"

#: Where each layer comes from, as ``server env`` names it.
NODE_LAYER: Final = "the node's sys.config"
ENVIRON_LAYER: Final = f"the environment ({ENV_PREFIX}...)"

Tables = dict[str, dict[str, Any]]


@dataclass
class NodeEnv:
    """What the node's env is made of (mutable: a reload changes it)."""

    root: Path
    read_config: Callable[[], SysConfig]
    from_environ: Tables
    #: the node's own layers merged (its sys.config, then the environment); the release
    #: handler holds this very dict, so a reload reaches the next install
    local_env: Tables = field(default_factory=dict)
    #: ``(where, tables)`` of the running release, lowest first, the specs' env included
    layers: list[tuple[str, Tables]] = field(default_factory=list)

    def release_layers(
        self, vsn: str, release_env: Tables, node_env: Tables
    ) -> list[tuple[str, Tables]]:
        """The override layers of release ``vsn``: its sys.config, the node's, the environment."""
        return [
            (str(self.root / "releases" / vsn / "sys.config"), release_env),
            (NODE_LAYER, node_env),
            (ENVIRON_LAYER, self.from_environ),
        ]

    def remember(self, specs: Tables, layers: list[tuple[str, Tables]]) -> None:
        """Record the layers in force (``specs``: each application's own env)."""
        node_env = next(t for where, t in layers if where == NODE_LAYER)
        self.local_env.clear()
        self.local_env.update(merge_env(node_env, self.from_environ))
        self.layers = [(f"the spec of {app}", {app: env}) for app, env in specs.items()]
        self.layers += [
            (where, {a: dict(t) for a, t in tables.items()}) for where, tables in layers
        ]


async def reload_config(boot: Pid) -> dict[str, Any]:
    """Re-read the node's sys.config and apply its env to the running release.

    Returns:
        ``{"vsn": running release, "changed": {application: what its config_change said}}``.

    Raises:
        InstallRefused: nothing runs yet, or the new env does not fit (nothing changed).
        SpecError: the sys.config is malformed (nothing changed).
    """
    node_env = kernel.get_label(boot, ENV_LAYERS_LABEL)
    release = current_release()
    if not isinstance(node_env, NodeEnv) or release is None:
        raise InstallRefused("the node has not booted a release yet")
    name, vsn = release
    config = await anyio.to_thread.run_sync(node_env.read_config)
    installed = await anyio.to_thread.run_sync(read_installed, node_env.root, vsn)
    layers = node_env.release_layers(vsn, installed.sys_config.env, config.env)
    check_release_env(
        {app: (spec.env_schema, spec.env) for app, spec in installed.view.apps.items()},
        layers,
        f"release {name} {vsn}",
    )
    apps = [(installed.apps[app], installed.lib_dirs[app]) for app in installed.apps]
    snapshot = await controller.change_application_data(
        apps, merge_env(*(tables for _, tables in layers))
    )
    node_env.remember({a: dict(s.env) for a, s in installed.view.apps.items()}, layers)
    changes = await controller.config_change(snapshot)
    return {"vsn": vsn, "changed": {app: repr(outcome) for app, outcome in changes}}
