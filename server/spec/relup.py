"""Relup: the low-level instructions that move a running node between two releases.

A relup lives in the newer release (``releases/<vsn>/relup.json``): ``up`` entries say how
to come from each older release, ``down`` entries how to go back to it. Keys are exact
versions. The instructions are OTP's low-level vocabulary, a discriminated union on ``op``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from server.spec.appup import FunctionName, Purge
from server.spec.files import SPEC_MODEL_CONFIG, AppName, ModuleName, Vsn

__all__ = [
    "ApplyCall",
    "CodeChange",
    "LoadObjectCode",
    "LowInstruction",
    "ModuleLoad",
    "ModuleRemove",
    "PointOfNoReturn",
    "PurgeModules",
    "Relup",
    "RelupEntry",
    "RestartNewEmulator",
    "ResumeModules",
    "StartModules",
    "StopModules",
    "SuspendModule",
    "SuspendModules",
]


class _Low(pydantic.BaseModel):
    model_config = SPEC_MODEL_CONFIG


class LoadObjectCode(_Low):
    """Read (compile and check) the new versions of ``modules`` of ``application``."""

    op: Literal["load_object_code"]
    application: AppName
    vsn: Vsn
    modules: list[ModuleName]


class PointOfNoReturn(_Low):
    """From here on the running system is changed."""

    op: Literal["point_of_no_return"]


class ModuleLoad(_Low):
    """Make the version read by ``load_object_code`` current (purging older old code)."""

    op: Literal["load"]
    module: ModuleName
    pre_purge: Purge = "brutal_purge"
    post_purge: Purge = "brutal_purge"


class ModuleRemove(_Low):
    """Make the module's current version old (``delete``)."""

    op: Literal["remove"]
    module: ModuleName
    pre_purge: Purge = "brutal_purge"
    post_purge: Purge = "brutal_purge"


class PurgeModules(_Low):
    """Hard-purge the old versions of ``modules``."""

    op: Literal["purge"]
    modules: list[ModuleName]


class SuspendModule(_Low):
    """One module to suspend the users of, with an optional timeout in seconds."""

    model_config = SPEC_MODEL_CONFIG

    module: ModuleName
    timeout: Annotated[float, pydantic.Field(gt=0)] | None = None


class SuspendModules(_Low):
    """Suspend every process that uses one of ``modules``."""

    op: Literal["suspend"]
    modules: list[SuspendModule]


class CodeChangeModule(_Low):
    """One module whose users get ``code_change``, with the appup's ``extra``."""

    model_config = SPEC_MODEL_CONFIG

    module: ModuleName
    extra: pydantic.JsonValue = None


class CodeChange(_Low):
    """Call ``code_change`` in the suspended users of ``modules``."""

    op: Literal["code_change"]
    mode: Literal["up", "down"]
    modules: list[CodeChangeModule]


class ResumeModules(_Low):
    """Resume the processes suspended for ``modules``."""

    op: Literal["resume"]
    modules: list[ModuleName]


class StopModules(_Low):
    """Terminate (through their supervisors) the processes that use ``modules``."""

    op: Literal["stop"]
    modules: list[ModuleName]


class StartModules(_Low):
    """Restart the processes stopped by ``stop`` for ``modules``."""

    op: Literal["start"]
    modules: list[ModuleName]


class ApplyCall(_Low):
    """Call ``module.function(*args)``; internal application steps use ``server.app`` calls."""

    op: Literal["apply"]
    module: ModuleName
    function: FunctionName
    args: list[pydantic.JsonValue] = []


class RestartNewEmulator(_Low):
    """Install by restarting the node's OS process into the new release (OTP's instruction).

    The whole script when the two releases need other Python distributions: those are not
    managed code, so no module-by-module step can move between them.
    """

    op: Literal["restart_new_emulator"]


LowInstruction = Annotated[
    RestartNewEmulator
    | LoadObjectCode
    | PointOfNoReturn
    | ModuleLoad
    | ModuleRemove
    | PurgeModules
    | SuspendModules
    | CodeChange
    | ResumeModules
    | StopModules
    | StartModules
    | ApplyCall,
    pydantic.Field(discriminator="op"),
]


class RelupEntry(pydantic.BaseModel):
    """The script from (``up``) or to (``down``) one other release version."""

    model_config = SPEC_MODEL_CONFIG

    vsn: Vsn
    description: str = ""
    instructions: list[LowInstruction]


class Relup(pydantic.BaseModel):
    """All the scripts of one release: how to come from, and go back to, other releases."""

    model_config = SPEC_MODEL_CONFIG

    vsn: Vsn
    up: list[RelupEntry] = []
    down: list[RelupEntry] = []

    def up_from(self, vsn: str) -> RelupEntry | None:
        """The script upgrading from ``vsn`` (exact key), or None."""
        return next((entry for entry in self.up if entry.vsn == vsn), None)

    def down_to(self, vsn: str) -> RelupEntry | None:
        """The script downgrading to ``vsn`` (exact key), or None."""
        return next((entry for entry in self.down if entry.vsn == vsn), None)
