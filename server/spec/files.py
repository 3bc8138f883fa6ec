"""Reading spec and configuration files: TOML in, a validated pydantic model out.

Every problem becomes one ``SpecError`` naming the file, the field (a dotted path such as
``appup.up[0].instructions[1].module``) and what was expected. Unknown keys are errors.

The names every spec shares (``ModuleName``, ``AppName``, ``Vsn``) are defined here, with
the words an error uses to say what a valid one looks like.
"""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import pydantic

from server.errors import SpecError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "SPEC_MODEL_CONFIG",
    "AppName",
    "ModuleName",
    "Vsn",
    "load_toml",
    "parse_model",
    "read_model",
    "validation_problems",
]

M = TypeVar("M", bound=pydantic.BaseModel)

#: Every spec model: immutable, unknown keys refused, strict about types.
SPEC_MODEL_CONFIG = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)

_MODULE_PATTERN = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"
_APP_PATTERN = r"^[a-z_][a-z0-9_]*$"
_VSN_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$"

#: What a value must look like, by the pattern it failed (for the error message).
_PATTERN_WORDS = {
    _MODULE_PATTERN: "a dotted Python module name such as 'pkg.mod'",
    _APP_PATTERN: "an application name: lowercase letters, digits and '_', not starting "
    "with a digit",
    _VSN_PATTERN: "a version such as '1.2.0': letters, digits and '.+_-', starting with a "
    "letter or digit",
}

#: The key that tells instruction kinds apart (the discriminated unions of appup and relup).
DISCRIMINATOR = "op"

ModuleName = Annotated[str, pydantic.StringConstraints(pattern=_MODULE_PATTERN)]
AppName = Annotated[str, pydantic.StringConstraints(pattern=_APP_PATTERN)]
Vsn = Annotated[str, pydantic.StringConstraints(pattern=_VSN_PATTERN)]


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file.

    Raises:
        SpecError: the file is missing, unreadable, not UTF-8 or not valid TOML.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(str(path), [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(str(path), [("", f"the file is not UTF-8 text (line {line})")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), [("", f"not valid TOML: {exc}")]) from None
    except RecursionError:
        raise SpecError(str(path), [("", "not usable TOML: nested too deeply")]) from None


def parse_model(model: type[M], data: object, source: str) -> M:
    """Validate ``data`` against ``model``.

    Raises:
        SpecError: the data does not fit; one problem per wrong field.
    """
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise SpecError(source, validation_problems(exc, data)) from None
    except RecursionError:
        raise SpecError(source, [("", "nested too deeply")]) from None


def read_model(model: type[M], path: Path) -> M:
    """Read a TOML file and validate it against ``model``.

    Raises:
        SpecError: unreadable, not TOML, or not fitting the model.
    """
    return parse_model(model, load_toml(path), str(path))


def validation_problems(
    exc: pydantic.ValidationError, data: object, prefix: str = ""
) -> list[tuple[str, str]]:
    """``(field, what was expected)`` for each error of a validation of ``data``.

    ``prefix`` is the dotted path of ``data`` in its file (empty at the top).
    """
    problems = []
    for error in exc.errors():
        where, what = _problem(error, data)
        if prefix:
            where = f"{prefix}.{where}" if where and not where.startswith("[") else prefix + where
        problems.append((where, what))
    return problems


def _problem(error: Any, data: object) -> tuple[str, str]:
    where, key_error = _where(tuple(error.get("loc", ())), data)
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return where, "unknown key (not allowed here)"
    if kind == "missing":
        return where, "required, missing"
    if kind == "union_tag_not_found":
        return _join(where, DISCRIMINATOR), "required, missing (it says which instruction this is)"
    if kind == "union_tag_invalid":
        return (
            _join(where, DISCRIMINATOR),
            f"unknown {DISCRIMINATOR} {ctx.get('tag')!r}; expected one of "
            f"{ctx.get('expected_tags')}",
        )
    if kind == "value_error":
        what = str(ctx.get("error", error.get("msg", "invalid")))
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_WORDS:
        what = f"expected {_PATTERN_WORDS[ctx['pattern']]}"
    else:
        what = str(error.get("msg", "invalid"))
    if "input" in error:
        what += f" (got {_shown(error['input'])})"
    if key_error:
        what = f"bad key: {what}"
    return where, what


def _where(loc: tuple[int | str, ...], data: object) -> tuple[str, bool]:
    """The dotted path of ``loc`` in ``data``, and whether the error is about a dict key.

    pydantic's locations also hold labels that are not in the file: a tagged union's tag
    (``instructions.1.update.module``), a JSON value's branch (``env.x.list.0``), a key
    check (``[key]``). Walking the data alongside tells them apart: a label is a part that
    is not a key of the table at hand (a missing key is always the last part; a tag can be
    last too, for an error of the whole instruction).
    """
    where = ""
    node = data
    key_error = False
    for index, part in enumerate(loc):
        if isinstance(part, int):
            where += f"[{part}]"
            node = node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
            continue
        if part == "[key]":
            key_error = True
            continue
        last = index == len(loc) - 1
        if not isinstance(node, dict) or (
            part not in node and (not last or node.get(DISCRIMINATOR) == part)
        ):
            continue
        where = _join(where, part)
        node = node.get(part)
    return where, key_error


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
