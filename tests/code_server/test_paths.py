"""Code paths as a whole: replace them and get an undo back, list them, forget them all."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import sys
import uuid
from typing import TYPE_CHECKING

import pytest

from server import code_server
from server.code_server import ModuleProxy, PathsUndo
from server.errors import ModuleConflict

if TYPE_CHECKING:
    from pathlib import Path

    from ._helpers import App


def lib_dir(where: Path, *names: str, text: str = "WHERE = 'new'\n") -> Path:
    """A source root at ``where`` providing the packages ``names`` (each ``WHERE = ...``)."""
    for name in names:
        (where / name).mkdir(parents=True, exist_ok=True)
        (where / name / "__init__.py").write_text(text, encoding="utf-8")
        (where / name / "mod.py").write_text(text, encoding="utf-8")
    where.mkdir(parents=True, exist_ok=True)
    return where.resolve()


def paths_of(*tops: str) -> tuple[list[Path], dict[str, Path | None]]:
    """What the code paths are: every root, and the root of each of ``tops``."""
    return code_server.code_paths(), {top: code_server.root_of(top) for top in tops}


def table() -> list[tuple[str, str, object]]:
    """What the module table holds: (module, slot, vsn) of every version."""
    return [(info.module, info.slot, info.vsn) for info in code_server.all_loaded()]


def test_replace_paths_points_the_names_at_the_new_root_and_the_undo_puts_them_back(
    app: App, tmp_path: Path
) -> None:
    app.write("mod", "WHERE = 'old'\n")
    assert app.import_("mod").WHERE == "old"
    before = paths_of(app.name)
    new = lib_dir(tmp_path / "lib-2", app.name)
    undo = code_server.replace_paths([new])
    assert undo == PathsUndo(((app.name, app.root.resolve()),))
    assert code_server.root_of(app.name) == new
    assert new in code_server.code_paths()
    assert app.slots("mod")[0][0] == "current", "loaded modules keep their versions"
    code_server.load(app.dotted("mod"))  # read from the new root
    assert app.import_("mod").WHERE == "new"
    code_server.restore_paths(undo)
    assert paths_of(app.name) == before
    assert code_server.source_changed(app.dotted("mod")), "the old root's file again"


def test_a_name_no_root_provided_is_managed_and_the_undo_drops_it(app: App, tmp_path: Path) -> None:
    name = f"fresh_{uuid.uuid4().hex}"
    before = paths_of(app.name, name)
    undo = code_server.replace_paths([lib_dir(tmp_path / "lib", name)])
    try:
        assert undo.previous == ((name, None),)
        assert code_server.is_managed(name)
        assert isinstance(importlib.import_module(f"{name}.mod"), ModuleProxy)
    finally:
        code_server.remove_path(tmp_path / "lib")  # its modules, while it provides them
        code_server.restore_paths(undo)
    assert not code_server.is_managed(name)
    assert paths_of(app.name, name) == before


def test_keep_managed_only_adds_the_names_no_root_provides(app: App, tmp_path: Path) -> None:
    name = f"fresh_{uuid.uuid4().hex}"
    new = lib_dir(tmp_path / "lib", app.name, name)
    undo = code_server.replace_paths([new], keep_managed=True)
    try:
        assert undo.previous == ((name, None),)
        assert code_server.root_of(app.name) == app.root.resolve(), "left where it was"
        assert code_server.root_of(name) == new
    finally:
        code_server.restore_paths(undo)
    assert code_server.root_of(name) is None


def test_restoring_twice_is_restoring_once(app: App, tmp_path: Path) -> None:
    before = paths_of(app.name)
    undo = code_server.replace_paths([lib_dir(tmp_path / "lib", app.name)])
    code_server.restore_paths(undo)
    code_server.restore_paths(undo)
    assert paths_of(app.name) == before


def test_replacing_and_restoring_leaves_the_module_table_alone(app: App, tmp_path: Path) -> None:
    app.first("mod", "WHERE = 'old'\n")
    proxy = sys.modules[app.dotted("mod")]
    loaded = table()
    undo = code_server.replace_paths([lib_dir(tmp_path / "lib", app.name)])
    assert table() == loaded
    code_server.restore_paths(undo)
    assert table() == loaded
    assert sys.modules[app.dotted("mod")] is proxy


def test_the_undo_is_frozen_plain_data(app: App, tmp_path: Path) -> None:
    undo = code_server.replace_paths([lib_dir(tmp_path / "lib", app.name)])
    code_server.restore_paths(undo)
    assert pickle.loads(pickle.dumps(undo)) == undo
    with pytest.raises(dataclasses.FrozenInstanceError):
        undo.previous = ()  # type: ignore[misc]


def test_a_missing_directory_is_refused_and_nothing_changes(app: App, tmp_path: Path) -> None:
    before = paths_of(app.name)
    good = lib_dir(tmp_path / "lib", app.name)
    with pytest.raises(FileNotFoundError, match="missing"):
        code_server.replace_paths([good, tmp_path / "missing"])
    assert paths_of(app.name) == before


def test_two_directories_providing_one_name_are_refused_and_nothing_changes(
    app: App, tmp_path: Path
) -> None:
    name = f"fresh_{uuid.uuid4().hex}"
    before = paths_of(app.name, name)
    first = lib_dir(tmp_path / "a", app.name, name)
    second = lib_dir(tmp_path / "b", name)
    with pytest.raises(ModuleConflict, match=name):
        code_server.replace_paths([first, second])
    assert paths_of(app.name, name) == before


def test_restore_paths_refuses_what_replace_paths_did_not_return(app: App) -> None:
    before = paths_of(app.name)
    with pytest.raises(TypeError, match="PathsUndo"):
        code_server.restore_paths(((app.name, None),))  # type: ignore[arg-type]
    assert paths_of(app.name) == before


def test_code_paths_lists_each_root_once(app: App, tmp_path: Path) -> None:
    extra = lib_dir(tmp_path / "lib", f"one_{uuid.uuid4().hex}", f"two_{uuid.uuid4().hex}")
    code_server.add_path(extra)
    try:
        paths = code_server.code_paths()
        assert paths == sorted(paths)
        assert paths.count(extra) == 1
        assert app.root.resolve() in paths
    finally:
        code_server.remove_path(extra)
    assert extra not in code_server.code_paths()


def test_forget_all_forgets_every_managed_module(tmp_path: Path) -> None:
    names = [f"gone_{uuid.uuid4().hex}" for _ in range(2)]
    roots = [lib_dir(tmp_path / f"lib{i}", name) for i, name in enumerate(names)]
    for root in roots:
        code_server.add_path(root)
    first = [importlib.import_module(f"{name}.mod") for name in names]
    code_server.forget_all()
    assert code_server.code_paths() == []
    assert code_server.all_loaded() == []
    for name in names:
        assert not code_server.is_managed(name)
        assert name not in sys.modules
        assert f"{name}.mod" not in sys.modules
    code_server.forget_all()  # nothing left to forget: no error
    code_server.add_path(roots[0])
    try:
        again = importlib.import_module(f"{names[0]}.mod")
        assert again is not first[0], "loaded afresh"
        assert [info.slot for info in code_server.which_versions(f"{names[0]}.mod")] == ["current"]
    finally:
        code_server.remove_path(roots[0])


def test_forget_all_also_forgets_modules_whose_path_was_restored_away(tmp_path: Path) -> None:
    name = f"orphan_{uuid.uuid4().hex}"
    undo = code_server.replace_paths([lib_dir(tmp_path / "lib", name)])
    importlib.import_module(f"{name}.mod")
    code_server.restore_paths(undo)
    assert {name, f"{name}.mod"} <= {info.module for info in code_server.all_loaded()}
    code_server.forget_all()
    assert code_server.all_loaded() == []
    assert name not in sys.modules
