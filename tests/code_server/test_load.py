"""load: build the new version first; on success it is current and the former current old."""

from __future__ import annotations

import importlib
import linecache
import sys
from typing import TYPE_CHECKING

import pytest

from server import code_server
from server.errors import ModuleLoadError, NotPurged, UnknownModule

if TYPE_CHECKING:
    from ._helpers import App

MOD = """
    __vsn__ = "$vsn"


    def version():
        return "$vsn"
"""

SIDE_EFFECT = """
    import sys

    __vsn__ = "broken"
    sys.modules[__name__].TOUCHED = True  # the half-built version, not the running one


    def version():
        return "broken"


    raise RuntimeError("the body fails here")
"""


def test_load_makes_the_new_version_current_and_the_former_current_old(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    mod = app.import_("mod")
    version = app.load("mod", MOD, vsn="v2")
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")]
    assert version.vsn == "v2"
    assert mod.version() == "v2"


def test_load_without_source_reads_the_file_again(app: App) -> None:
    path = app.write("mod", MOD, vsn="v1")
    mod = app.import_("mod")
    app.write("mod", MOD, vsn="v2")
    version = code_server.load(app.dotted("mod"))
    assert version.path == str(path)
    assert mod.version() == "v2"


def test_load_of_a_module_never_imported_imports_it(app: App) -> None:
    app.write("mod", MOD, vsn="v1")
    version = code_server.load(app.dotted("mod"))
    assert app.slots("mod") == [("current", "v1")]
    assert sys.modules[app.dotted("mod")].version() == "v1"
    assert version.module.version() == "v1"


def test_load_with_an_old_version_present_refuses_not_purged(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    app.load("mod", MOD, vsn="v2")
    with pytest.raises(NotPurged, match="purge"):
        app.load("mod", MOD, vsn="v3")
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")], "nothing changed"
    assert app.import_("mod").version() == "v2"


@pytest.mark.parametrize(
    ("source", "line", "reason"),
    [
        ("X = 1\ndef version(:\n    pass\n", 2, "syntax error"),
        ("X = 1\n\nY = 1 / 0\n", 3, "ZeroDivisionError"),
        (SIDE_EFFECT, 12, "RuntimeError: the body fails here"),
        ("import $app.missing_module_xyz\n", 1, "ModuleNotFoundError"),
        ("X = '\0'\n", None, "null bytes"),
    ],
    ids=["syntax-error", "body-raises", "body-raises-after-side-effects", "bad-import", "nul"],
)
def test_a_failing_new_version_changes_nothing_and_names_file_and_line(
    app: App, source: str, line: int | None, reason: str
) -> None:
    path = app.write("mod", MOD, vsn="v1")
    mod = app.import_("mod")
    before = code_server.which_versions(app.dotted("mod"))
    with pytest.raises(ModuleLoadError) as failed:
        code_server.load(app.dotted("mod"), app.render(source))
    error = failed.value
    assert (error.module, error.path, error.line) == (app.dotted("mod"), str(path), line)
    assert reason in str(error)
    assert (f"{path}:{line}" if line else str(path)) in str(error)
    assert code_server.which_versions(app.dotted("mod")) == before
    assert sys.modules[app.dotted("mod")] is mod
    assert mod.version() == "v1"
    assert not hasattr(mod, "TOUCHED")


def test_a_failing_file_on_first_import_names_file_and_line(app: App) -> None:
    path = app.write("mod", "X = 1\nraise ValueError('no')\n")
    with pytest.raises(ModuleLoadError, match=f"{path}:2"):
        app.import_("mod")
    assert app.dotted("mod") not in sys.modules
    assert app.slots("mod") == []
    app.write("mod", MOD, vsn="v1")
    assert app.import_("mod").version() == "v1", "importable once fixed"


def test_a_file_that_is_not_utf8_is_a_load_error(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    path = app.path("mod")
    path.write_bytes(b"X = '\xff'\n")
    with pytest.raises(ModuleLoadError, match="UTF-8"):
        code_server.load(app.dotted("mod"))
    assert app.slots("mod") == [("current", "v1")]


def test_importlib_reload_is_a_load(app: App) -> None:
    app.write("mod", MOD, vsn="v1")
    mod = app.import_("mod")
    app.write("mod", MOD, vsn="v2")
    assert importlib.reload(mod) is mod
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")]
    with pytest.raises(NotPurged):
        importlib.reload(mod)
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")]


def test_tracebacks_of_a_version_loaded_from_text_show_its_lines(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    first = app.load("mod", MOD, vsn="v2")
    assert code_server.soft_purge(app.dotted("mod"))
    second = app.load("mod", MOD, vsn="v2")  # the same text again
    assert code_server.soft_purge(app.dotted("mod")), "drops the first text version"
    for version in (first, second):
        assert version.synthetic_filename is not None
        assert version.module.version.__code__.co_filename == version.synthetic_filename
    assert first.synthetic_filename != second.synthetic_filename
    assert linecache.getline(str(second.synthetic_filename), 5) == "def version():\n"
    assert linecache.getline(str(first.synthetic_filename), 5) == "", "purged with its version"


def test_a_module_outside_every_root_cannot_be_loaded(app: App) -> None:
    with pytest.raises(UnknownModule):
        code_server.load("not_an_app_module_xyz", "X = 1\n")
