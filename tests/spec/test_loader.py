"""Reading the file itself: unreadable, not UTF-8, not TOML (for every kind of spec file)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from server.errors import SpecError
from server.spec.app_spec import AppSpec
from server.spec.files import load_toml, parse_model, read_model
from server.spec.release_spec import ReleaseSpec
from server.spec.sys_config import read_sys_config

if TYPE_CHECKING:
    from pathlib import Path

Reader = Callable[["Path"], object]

READERS = [
    pytest.param(lambda path: read_model(AppSpec, path), id="app_spec"),
    pytest.param(lambda path: read_model(ReleaseSpec, path), id="release_spec"),
    pytest.param(read_sys_config, id="sys_config"),
    pytest.param(load_toml, id="load_toml"),
]


def make_directory(tmp_path: Path) -> Path:
    path = tmp_path / "spec.toml"
    path.mkdir()
    return path


def write_bytes(data: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / "spec.toml"
        path.write_bytes(data)
        return path

    return make


# (id, how to make the bad file, words the message must hold)
BAD_FILES = [
    pytest.param(make_directory, ("cannot read the file",), id="a-directory"),
    pytest.param(
        write_bytes(b'vsn = "1"\nname = "caf\xe9"\n'), ("not UTF-8", "line 2"), id="latin-1"
    ),
    pytest.param(write_bytes(b"\xff\xfe\x00n"), ("not UTF-8",), id="utf-16"),
    pytest.param(write_bytes(b'name = "a"\nvsn = \n'), ("not valid TOML", "line 2"), id="no-value"),
    pytest.param(write_bytes(b"name = 'a'\nname = 'b'\n"), ("not valid TOML",), id="dup-key"),
    pytest.param(write_bytes(b"[mod\n"), ("not valid TOML",), id="open-table"),
    pytest.param(write_bytes(b"x = " + b"[" * 5000 + b"]" * 5000), ("nested",), id="too-deep"),
]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("make", "expected"), BAD_FILES)
def test_a_bad_file_is_a_spec_error_naming_it(
    tmp_path: Path, reader: Reader, make: Callable[[Path], Path], expected: tuple[str, ...]
) -> None:
    path = make(tmp_path)
    with pytest.raises(SpecError) as caught:
        reader(path)
    error = caught.value
    assert type(error) is SpecError
    assert error.path == str(path)
    assert str(error).startswith(f"{path}: ")
    assert len(error.problems) == 1
    where, what = error.problems[0]
    assert where == ""
    for word in expected:
        assert word in what


@pytest.mark.parametrize(
    "reader", [p for p in READERS if p.id != "sys_config"]
)  # a missing sys.config means the defaults
def test_a_missing_file_is_a_spec_error(tmp_path: Path, reader: Reader) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(SpecError, match="cannot read the file: No such file") as caught:
        reader(path)
    assert type(caught.value) is SpecError
    assert caught.value.path == str(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text('name = "a"\n')
    path.chmod(0)
    with pytest.raises(SpecError, match="cannot read the file: Permission denied"):
        read_model(AppSpec, path)


def test_a_top_level_that_is_not_a_table_is_named() -> None:
    with pytest.raises(SpecError, match=r"^x\.toml: .*valid dictionary") as caught:
        parse_model(AppSpec, ["not", "a", "table"], "x.toml")
    assert caught.value.problems[0][0] == ""
