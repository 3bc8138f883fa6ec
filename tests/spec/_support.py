"""Helpers for the spec tests: write a TOML file, read it, and check the error it gives."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import pydantic
import pytest

from server.errors import SpecError
from server.spec.files import read_model

if TYPE_CHECKING:
    from pathlib import Path

M = TypeVar("M", bound=pydantic.BaseModel)


def write(directory: Path, text: str, name: str = "spec.toml") -> Path:
    """Write ``text`` to ``directory/name`` and return the path."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def spec_error(model: type[pydantic.BaseModel], path: Path) -> SpecError:
    """The error ``read_model(model, path)`` raises (it must be exactly a ``SpecError``)."""
    with pytest.raises(SpecError) as caught:
        read_model(model, path)
    assert type(caught.value) is SpecError
    return caught.value


def assert_problem(error: SpecError, path: Path, field: str, *expected: str) -> None:
    """``error`` names the file, the dotted ``field``, and each ``expected`` phrase for it."""
    message = str(error)
    assert error.path == str(path)
    assert message.startswith(f"{path}: "), message
    found = [what for where, what in error.problems if where == field]
    assert found, f"no problem for field {field!r} in {error.problems}"
    assert any(all(word in what for word in expected) for what in found), (field, found)
    if field:
        assert f"{field}: " in message, message
