"""Appup instructions: how to move an application between two of its versions.

The high-level instructions a user writes in an application spec, as a discriminated
union on ``op`` (OTP's appup vocabulary, with OTP's defaults). ``relup`` translates them
into the low-level instructions the release handler runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import pydantic

from server.spec.files import SPEC_MODEL_CONFIG, AppName, ModuleName, Vsn

__all__ = [
    "AddApplication",
    "AddModule",
    "AppName",
    "AppUp",
    "AppUpEntry",
    "Apply",
    "DeleteModule",
    "FunctionName",
    "HighInstruction",
    "LoadModule",
    "ModuleName",
    "Purge",
    "RemoveApplication",
    "RestartApplication",
    "Update",
    "Vsn",
    "version_matches",
]

Purge = Literal["soft_purge", "brutal_purge"]
FunctionName = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z_]\w*$")]


class _Instruction(pydantic.BaseModel):
    model_config = SPEC_MODEL_CONFIG


class LoadModule(_Instruction):
    """Load a new version of a functional module (no process state to migrate)."""

    op: Literal["load_module"]
    module: ModuleName
    dep_mods: list[ModuleName] = []
    pre_purge: Purge = "brutal_purge"
    post_purge: Purge = "brutal_purge"


class Update(_Instruction):
    """Load a module and migrate the processes using it (suspend, code_change, resume).

    ``change = "soft"`` only suspends and resumes; ``"advanced"`` calls ``code_change`` with
    ``extra``. ``supervisor = true`` is OTP's ``{update, M, supervisor}``: static, advanced,
    the supervisor re-reads its child specs.
    """

    op: Literal["update"]
    module: ModuleName
    change: Literal["soft", "advanced"] = "soft"
    extra: pydantic.JsonValue = None
    timeout: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=True)] | None = None
    mod_type: Literal["static", "dynamic"] | None = None
    dep_mods: list[ModuleName] = []
    pre_purge: Purge = "brutal_purge"
    post_purge: Purge = "brutal_purge"
    supervisor: bool = False

    @pydantic.model_validator(mode="after")
    def _coherent(self) -> Update:
        if self.supervisor and "change" in self.model_fields_set and self.change == "soft":
            raise ValueError("a supervisor update is always advanced: drop change = 'soft'")
        if not self.advanced and "extra" in self.model_fields_set:
            raise ValueError("extra goes to code_change, which runs only with change = 'advanced'")
        return self

    @property
    def effective_mod_type(self) -> Literal["static", "dynamic"]:
        """``static`` for supervisors unless given, else ``dynamic`` (OTP's defaults)."""
        if self.mod_type is not None:
            return self.mod_type
        return "static" if self.supervisor else "dynamic"

    @property
    def advanced(self) -> bool:
        """Whether ``code_change`` runs (always for a supervisor update)."""
        return self.change == "advanced" or self.supervisor


class AddModule(_Instruction):
    """Load a module that did not exist before."""

    op: Literal["add_module"]
    module: ModuleName
    dep_mods: list[ModuleName] = []


class DeleteModule(_Instruction):
    """Remove a module (its current version becomes old and is purged)."""

    op: Literal["delete_module"]
    module: ModuleName
    dep_mods: list[ModuleName] = []


class Apply(_Instruction):
    """Call ``module.function(*args)``."""

    op: Literal["apply"]
    module: ModuleName
    function: FunctionName
    args: list[pydantic.JsonValue] = []


class AddApplication(_Instruction):
    """Load and start an application that is new in the release."""

    op: Literal["add_application"]
    application: AppName
    type: Literal["permanent", "transient", "temporary", "load", "none"] = "permanent"


class RemoveApplication(_Instruction):
    """Stop an application that leaves the release and unload its modules."""

    op: Literal["remove_application"]
    application: AppName


class RestartApplication(_Instruction):
    """Stop an application, reload all its modules, and start it again."""

    op: Literal["restart_application"]
    application: AppName


HighInstruction = Annotated[
    LoadModule
    | Update
    | AddModule
    | DeleteModule
    | Apply
    | AddApplication
    | RemoveApplication
    | RestartApplication,
    pydantic.Field(discriminator="op"),
]


class AppUpEntry(pydantic.BaseModel):
    """Instructions for one other version: an exact ``vsn``, or a ``vsn_regex``."""

    model_config = SPEC_MODEL_CONFIG

    vsn: Vsn | None = None
    vsn_regex: str | None = None
    instructions: list[HighInstruction] = []

    @pydantic.field_validator("vsn_regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"expected a valid regular expression: {exc}") from None
        return pattern

    @pydantic.model_validator(mode="after")
    def _one_key(self) -> AppUpEntry:
        if (self.vsn is None) == (self.vsn_regex is None):
            raise ValueError("give exactly one of vsn (exact) or vsn_regex (a pattern)")
        return self

    def matches(self, vsn: str) -> bool:
        """Whether this entry applies to ``vsn``."""
        if self.vsn is not None:
            return self.vsn == vsn
        assert self.vsn_regex is not None
        return version_matches(self.vsn_regex, vsn)


class AppUp(pydantic.BaseModel):
    """How to upgrade from earlier versions and downgrade to them (first match wins)."""

    model_config = SPEC_MODEL_CONFIG

    up: list[AppUpEntry] = []
    down: list[AppUpEntry] = []

    def up_from(self, vsn: str) -> AppUpEntry | None:
        """The first up entry for ``vsn``, or None."""
        return next((entry for entry in self.up if entry.matches(vsn)), None)

    def down_to(self, vsn: str) -> AppUpEntry | None:
        """The first down entry for ``vsn``, or None."""
        return next((entry for entry in self.down if entry.matches(vsn)), None)


def version_matches(pattern: str, vsn: str) -> bool:
    r"""OTP's appup regex rule: the *leftmost* match must be the whole version string.

    ``"1|1\\.2"`` does not match ``"1.2"`` (the leftmost match is ``"1"``), while
    ``"1\\.2|1"`` does: ``re.fullmatch`` would accept both, so it is not used.
    """
    found = re.search(pattern, vsn)
    return found is not None and found.group(0) == vsn
