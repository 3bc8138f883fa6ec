"""An application's env schema: the keys it takes, their types and bounds, as data.

An application spec may declare its env's shape in ``[env_schema]``; the schema becomes a
pydantic model (strict: ``port = "18090x"`` is no int; unknown keys refused), so values are
checked wherever env is put together, by one rule: the spec's own ``[env]`` when the spec is
read, a release's sys.config when a package is built, and the layers a node merges (the
release's sys.config, the root's, the environment) at boot and at install::

    [env_schema]
    port = { type = "int", ge = 1, le = 65535, required = true }
    host = "str"                             # the short form: just the type
    mode = { type = "str", choices = ["fast", "safe"] }
    tags = { type = "list" }

Types: ``int``, ``float`` (an int is accepted), ``str``, ``bool``, ``list``, ``table``,
``any``. Declared as data, not as a class in the application's code, so that checking a
sys.config never has to import (and run) the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import pydantic

from server.errors import SpecError
from server.spec.files import SPEC_MODEL_CONFIG

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["EnvField", "EnvSchema", "EnvType", "check_env", "check_env_layers", "check_release_env"]

EnvType = Literal["int", "float", "str", "bool", "list", "table", "any"]

_PYTHON: Final[dict[str, Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list[pydantic.JsonValue],
    "table": dict[str, pydantic.JsonValue],
    "any": pydantic.JsonValue,
}


class EnvField(pydantic.BaseModel):
    """One key of an env schema."""

    model_config = SPEC_MODEL_CONFIG

    type: EnvType
    required: bool = False
    ge: float | None = None
    le: float | None = None
    min_length: Annotated[int, pydantic.Field(ge=0)] | None = None
    max_length: Annotated[int, pydantic.Field(ge=0)] | None = None
    pattern: str | None = None
    choices: list[pydantic.JsonValue] | None = None

    def annotation(self) -> Any:
        """The key's type for pydantic, its bounds attached."""
        base = _PYTHON[self.type]
        if self.choices is not None:
            base = Literal[tuple(self.choices)]
        bounds = pydantic.Field(
            ge=self.ge,
            le=self.le,
            min_length=self.min_length,
            max_length=self.max_length,
            pattern=self.pattern,
        )
        return Annotated[base, bounds]


#: key -> its field, or just its type name
EnvSchema = dict[str, EnvField | EnvType]


def _field(entry: EnvField | str) -> EnvField:
    return entry if isinstance(entry, EnvField) else EnvField(type=entry)  # type: ignore[arg-type]


def _model(app: str, schema: Mapping[str, EnvField | str], *, complete: bool) -> type[Any]:
    fields: dict[str, Any] = {}
    for key, entry in schema.items():
        spec = _field(entry)
        default = ... if spec.required and complete else None
        fields[key] = (spec.annotation() | None if default is None else spec.annotation(), default)
    return pydantic.create_model(  # type: ignore[no-any-return]
        f"{app}_env",
        __config__=pydantic.ConfigDict(extra="forbid", strict=True),
        **fields,
    )


def check_env(
    app: str, schema: Mapping[str, EnvField | str], env: Mapping[str, Any], *, complete: bool
) -> list[tuple[str, str]]:
    """What is wrong with ``env`` for ``schema``: ``(key, message)`` pairs (none: fine).

    ``complete``: ``env`` is the whole env (required keys must be there); otherwise a part
    of it (only the keys given are checked).
    """
    if not schema:
        return []
    try:
        _model(app, schema, complete=complete).model_validate(dict(env))
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(env)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append((key, message))
        return problems
    return []


def check_env_layers(
    app: str, schema: Mapping[str, EnvField | str], layers: Sequence[tuple[str, Mapping[str, Any]]]
) -> None:
    """Check the merged env of ``app`` (layers lowest first, each named by where it comes from).

    Raises:
        SpecError: a value is wrong, unknown or missing; it names the application's key and
            the layer the value came from (the last that set it).
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for where, values in layers:
        for key, value in values.items():
            merged[key] = value
            origin[key] = where
    problems = check_env(app, schema, merged, complete=True)
    if problems:
        named = []
        for key, message in problems:
            source = origin.get(key.split(".")[0])
            named.append((f"{app}.{key}" + (f" (from {source})" if source else ""), message))
        raise SpecError(f"the env of application {app}", named)


def check_release_env(
    apps: Mapping[str, tuple[Mapping[str, EnvField | str], Mapping[str, Any]]],
    layers: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]],
    release: str,
    *,
    strict_layers: int = 1,
) -> list[str]:
    """Check every application's merged env, and the applications each layer names.

    ``apps`` maps each application of the release to its schema and its spec's env;
    ``layers`` are the env overrides per application, lowest first, each with where it
    comes from. A table for an application the release lacks is an error in the first
    ``strict_layers`` layers (the release's own sys.config) and a warning in the others
    (a node's sys.config may prepare an application a later release brings).

    Returns:
        The warnings, one line each.

    Raises:
        SpecError: a table of a strict layer names no application of ``release``, or a
            value does not fit its application's ``env_schema``.
    """
    warnings: list[str] = []
    for index, (where, tables) in enumerate(layers):
        unknown = sorted(set(tables) - set(apps))
        if unknown and index >= strict_layers:
            warnings.extend(
                f"{where}: [{name}] names no application of {release}; ignored until a "
                "release has it"
                for name in unknown
            )
        elif unknown:
            raise SpecError(
                where,
                [
                    (
                        name,
                        f"no application {name} in {release} (its applications: "
                        f"{', '.join(sorted(apps)) or 'none'})",
                    )
                    for name in unknown
                ],
            )
    for app, (schema, spec_env) in apps.items():
        check_env_layers(
            app,
            schema,
            [(f"the spec of {app}", spec_env), *((w, t.get(app, {})) for w, t in layers)],
        )
    return warnings
