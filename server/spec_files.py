"""Reading spec and configuration files: TOML in, a validated pydantic model out.

Every problem becomes one ``SpecError`` naming the file, the field (a dotted path such as
``appup.up[0].instructions[1].module``) and what was expected. Unknown keys are errors.
"""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic

from server.errors import SpecError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SPEC_MODEL_CONFIG", "load_toml", "parse_model", "read_model"]

M = TypeVar("M", bound=pydantic.BaseModel)

#: Every spec model: immutable, unknown keys refused, strict about types.
SPEC_MODEL_CONFIG = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)


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
    except UnicodeDecodeError:
        raise SpecError(str(path), [("", "the file is not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), [("", f"not valid TOML: {exc}")]) from None


def parse_model(model: type[M], data: object, source: str) -> M:
    """Validate ``data`` against ``model``.

    Raises:
        SpecError: the data does not fit; one problem per wrong field.
    """
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise SpecError(source, [_problem(error) for error in exc.errors()]) from None
    except (ValueError, TypeError) as exc:
        raise SpecError(source, [("", str(exc))]) from None


def read_model(model: type[M], path: Path) -> M:
    """Read a TOML file and validate it against ``model``.

    Raises:
        SpecError: unreadable, not TOML, or not fitting the model.
    """
    return parse_model(model, load_toml(path), str(path))


def _problem(error: Any) -> tuple[str, str]:
    where = ""
    for part in error.get("loc", ()):
        if isinstance(part, int):
            where += f"[{part}]"
        elif part.startswith(("function-", "tagged-union[")):
            continue
        else:
            where += f".{part}" if where else str(part)
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        what = "unknown key (not allowed here)"
    elif kind == "missing":
        what = "required, missing"
    else:
        what = error.get("msg", "invalid")
        if "input" in error and kind not in ("union_tag_invalid",):
            shown = repr(error["input"])
            what += f" (got {shown[:80]})"
    return where, what
