"""``server new NAME``: a user project with one application, ready to run, test and build.

The files come from ``new_project/`` (package data, read with ``importlib.resources``), each
``$name`` replaced by the project's name, which is also its application's and release's.
"""

from __future__ import annotations

import re
import string
from typing import TYPE_CHECKING, Final

import importlib_resources

from server.errors import ProjectError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["new_project"]

_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")

#: template file -> where it goes in the project (``$name`` replaced there too)
_LAYOUT: Final = {
    "app.py.tmpl": "apps/$name-0.1.0/$name/app.py",
    "sup.py.tmpl": "apps/$name-0.1.0/$name/sup.py",
    "store.py.tmpl": "apps/$name-0.1.0/$name/store.py",
    "web.py.tmpl": "apps/$name-0.1.0/$name/web.py",
    "appspec.toml.tmpl": "appspecs/$name-0.1.0.toml",
    "release.toml.tmpl": "releases/$name-0.1.0.toml",
    "sys.config.tmpl": "sys.config",
    "test_app.py.tmpl": "tests/test_$name.py",
    "conftest.py.tmpl": "tests/conftest.py",
    "pyproject.toml.tmpl": "pyproject.toml",
    "gitignore.tmpl": ".gitignore",
    "Makefile.tmpl": "Makefile",
    "README.md.tmpl": "README.md",
}


def new_project(target: Path, name: str | None = None) -> list[Path]:
    """Write a new project into ``target`` (missing or empty); returns the files written.

    Raises:
        ProjectError: the name is not a lower-case Python identifier, or ``target`` holds
            files already (nothing is written then).
    """
    name = name or target.name
    if not _NAME.fullmatch(name):
        raise ProjectError(
            f"{name!r} cannot name a project: use lower-case letters, digits and _, "
            "starting with a letter (it is the application's package name too)"
        )
    if target.exists() and any(target.iterdir()):
        raise ProjectError(f"{target} is not empty: give a new folder")
    templates = importlib_resources.files("server.cli") / "new_project"
    written = []
    for template, where in _LAYOUT.items():
        text = (templates / template).read_text(encoding="utf-8")
        path = target / string.Template(where).substitute(name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(text).safe_substitute(name=name), encoding="utf-8")
        written.append(path)
    (target / "apps" / f"{name}-0.1.0" / name / "__init__.py").write_text(
        f'"""The {name} application."""\n\n__vsn__ = "0.1.0"\n', encoding="utf-8"
    )
    return written
