"""Packages, submodules, relative imports and data files of an application."""

from __future__ import annotations

import importlib.resources
import sys
from typing import TYPE_CHECKING

from server import code_server
from server.code_server import ModuleProxy

if TYPE_CHECKING:
    from ._helpers import App

SUB = """
    __vsn__ = "$vsn"
    X = "$vsn"
"""


def test_a_package_has_versions_like_any_module(app: App) -> None:
    app.write("", 'X = "v1"\n')
    package = app.import_("")
    assert isinstance(package, ModuleProxy)
    app.load("", 'X = "v2"\n')
    assert package.X == "v2"
    assert [slot for slot, _ in app.slots("")] == ["current", "old"]
    assert package.__path__ == [str(app.root / app.name)]


def test_a_submodule_imported_from_outside_is_its_proxy_on_the_parent(app: App) -> None:
    app.write("sub", SUB, vsn="v1")
    sub = app.import_("sub")
    package = app.import_("")
    assert package.sub is sub
    app.load("sub", SUB, vsn="v2")
    assert package.sub.X == "v2"


def test_a_submodule_the_package_body_imports_is_handed_out_as_its_proxy(app: App) -> None:
    app.write("", "from . import sub\n")
    app.write("sub", SUB, vsn="v1")
    package = app.import_("")
    sub = sys.modules[app.dotted("sub")]
    assert isinstance(sub, ModuleProxy)
    assert package.sub is sub
    app.load("sub", SUB, vsn="v2")
    assert package.sub.X == "v2", "the parent does not hold a fixed version"


def test_reloading_the_parent_keeps_handing_out_the_submodule(app: App) -> None:
    app.write("", "from . import sub\n")
    app.write("sub", SUB, vsn="v1")
    package = app.import_("")
    sub = sys.modules[app.dotted("sub")]
    app.load("", "Y = 2\n")  # the new body does not import sub again
    assert package.Y == 2
    assert package.sub is sub
    code_server.soft_purge(app.dotted(""))
    app.load("", "from . import sub as again\n")
    assert package.sub is sub
    assert package.again is sub


def test_a_submodule_version_bound_on_the_parent_is_replaced_by_its_proxy(app: App) -> None:
    sub_v1 = app.first("sub", SUB, vsn="v1").module
    app.load(
        "", "import sys\nsub = sys.modules[__name__ + '.sub'].__server_entry__.current.module\n"
    )
    package = app.import_("")
    assert package.__dict__["sub"] is sub_v1, "the body bound a fixed version"
    assert package.sub is sys.modules[app.dotted("sub")]


def test_relative_imports_inside_an_application(app: App) -> None:
    app.write("util", "def double(x):\n    return 2 * x\n")
    app.write("inner", "", package=True)
    app.write(
        "inner.leaf",
        """
        from .. import util
        from ..util import double
        from . import sibling

        def both(x):
            return util.double(x), double(x), sibling.NAME
        """,
    )
    app.write("inner.sibling", 'NAME = "sibling"\n')
    leaf = app.import_("inner.leaf")
    assert leaf.both(4) == (8, 8, "sibling")
    assert isinstance(leaf.util, ModuleProxy)
    assert isinstance(app.import_("inner").sibling, ModuleProxy)


def test_a_submodule_loaded_from_source_before_any_import_is_importable(app: App) -> None:
    version = app.load("fresh", 'X = "from source"\n')
    fresh = app.import_("fresh")
    assert fresh.X == "from source"
    assert app.import_("").fresh is fresh
    assert version.module.X == "from source"


def test_importlib_resources_reads_an_application_data_file(app: App) -> None:
    app.write("data", "", package=True)
    (app.root / app.name / "data" / "greeting.txt").write_text("hello\n")
    files = importlib.resources.files(app.dotted("data"))
    assert files.joinpath("greeting.txt").read_text() == "hello\n"
    app.load("data", 'X = "v2"\n')
    files = importlib.resources.files(app.import_("data"))
    assert files.joinpath("greeting.txt").read_text() == "hello\n", "after a reload too"


def test_star_import_takes_the_current_versions_names(app: App) -> None:
    app.write("names", 'A = "v1"\n_private = "hidden"\n')
    app.import_("names")
    app.load("names", 'A = "v2"\nB = "new"\n_private = "hidden"\n')
    namespace: dict[str, object] = {}
    exec(f"from {app.dotted('names')} import *", namespace)
    assert (namespace["A"], namespace["B"]) == ("v2", "new")
    assert "_private" not in namespace
