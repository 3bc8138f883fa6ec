"""Two-phase loading: prepare builds aside, install_prepared makes current, revert takes back.

The last test plays a release switch the way the installer does (paths replaced, versions
installed) and checks that the undo puts the path set and the module table back exactly.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from server import code_server
from server.errors import ModuleLoadError, NotPurged, UnknownModule

if TYPE_CHECKING:
    from pathlib import Path

    from ._helpers import App

MOD = """
__vsn__ = "$vsn"
"""


def table() -> list[tuple[str, str, object]]:
    """What the module table holds: (module, slot, vsn) of every version."""
    return [(info.module, info.slot, info.vsn) for info in code_server.all_loaded()]


def new_release(app: App, where: Path, vsn: str, *modules: str) -> Path:
    """A lib directory of the next release: the package and ``modules`` at ``vsn``."""
    top = where / app.name
    top.mkdir(parents=True)
    (top / "__init__.py").write_text(f"__vsn__ = {vsn!r}\n", encoding="utf-8")
    for module in modules:
        (top / f"{module}.py").write_text(f"__vsn__ = {vsn!r}\n", encoding="utf-8")
    return where.resolve()


def test_prepare_builds_a_version_and_changes_nothing(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    proxy = sys.modules[app.dotted("mod")]
    loaded = table()
    path = app.write("mod", MOD, vsn="v2")
    version = code_server.prepare(app.dotted("mod"), path)
    assert version.vsn == "v2"
    assert table() == loaded
    assert sys.modules[app.dotted("mod")] is proxy
    assert code_server.current_version(app.dotted("mod")) is not version


def test_prepare_of_a_broken_file_names_it_and_changes_nothing(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    loaded = table()
    path = app.write("mod", "def broken(:\n")
    with pytest.raises(ModuleLoadError, match="syntax error"):
        code_server.prepare(app.dotted("mod"), path)
    assert table() == loaded


def test_install_prepared_makes_it_current_and_the_former_old(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    version = code_server.prepare(app.dotted("mod"), app.write("mod", MOD, vsn="v2"))
    code_server.install_prepared(app.dotted("mod"), version)
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")]
    assert code_server.current_version(app.dotted("mod")) is version
    assert code_server.has_old(app.dotted("mod"))


def test_install_prepared_with_an_old_version_is_refused(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    app.load("mod", MOD, vsn="v2")
    version = code_server.prepare(app.dotted("mod"), app.write("mod", MOD, vsn="v3"))
    with pytest.raises(NotPurged):
        code_server.install_prepared(app.dotted("mod"), version)
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")], "nothing changed"


def test_install_prepared_of_an_unmanaged_module_is_refused(app: App) -> None:
    version = code_server.prepare(app.dotted("mod"), app.write("mod", MOD, vsn="v1"))
    loaded = table()
    with pytest.raises(UnknownModule, match="colorsys"):
        code_server.install_prepared("colorsys", version)
    assert table() == loaded


def test_revert_makes_the_old_version_current_again(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    version = code_server.prepare(app.dotted("mod"), app.write("mod", MOD, vsn="v2"))
    code_server.install_prepared(app.dotted("mod"), version)
    code_server.revert(app.dotted("mod"))
    assert app.slots("mod") == [("current", "v1")]
    assert not code_server.has_old(app.dotted("mod"))
    assert app.import_("mod").__vsn__ == "v1"


def test_revert_of_a_first_install_forgets_the_module_entirely(app: App) -> None:
    app.import_("")
    name = app.dotted("fresh")
    version = code_server.prepare(name, app.write("fresh", MOD, vsn="v1"))
    code_server.install_prepared(name, version)
    assert sys.modules[name].__vsn__ == "v1"
    assert app.import_("").fresh is sys.modules[name]
    code_server.revert(name)
    assert name not in sys.modules
    assert not hasattr(app.import_(""), "fresh")
    assert code_server.which_versions(name) == []
    assert code_server.current_version(name) is None


def test_revert_takes_a_delete_back(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    assert code_server.delete(app.dotted("mod"))
    code_server.revert(app.dotted("mod"))
    assert app.slots("mod") == [("current", "v1")]


def test_revert_of_a_module_never_loaded_does_nothing(app: App) -> None:
    loaded = table()
    code_server.revert(app.dotted("never"))
    assert table() == loaded


def test_undoing_a_release_switch_restores_the_path_set_and_the_module_table(
    app: App, tmp_path: Path
) -> None:
    app.first("", MOD, vsn="v1")
    app.first("mod", MOD, vsn="v1")
    name = app.dotted("mod")
    proxies = {n: sys.modules[n] for n in (app.name, name)}
    paths, root = code_server.code_paths(), code_server.root_of(app.name)
    loaded = table()
    lib = new_release(app, tmp_path / "lib-2", "v2", "mod", "added")
    undo = code_server.replace_paths([lib])
    assert code_server.root_of(app.name) == lib
    files = {app.name: "__init__.py", name: "mod.py", app.dotted("added"): "added.py"}
    for module, file in files.items():
        version = code_server.prepare(module, lib / app.name / file)
        code_server.install_prepared(module, version)
    assert app.import_("added").__vsn__ == "v2"
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")]
    for module in (app.dotted("added"), name, app.name):  # the undo log, backwards
        code_server.revert(module)
    code_server.restore_paths(undo)
    assert (code_server.code_paths(), code_server.root_of(app.name)) == (paths, root)
    assert table() == loaded
    assert {n: sys.modules[n] for n in proxies} == proxies
    assert app.dotted("added") not in sys.modules
