"""The harness's private copy of a source tree, and the ``sys.config`` written into it.

Only the release *sources* are copied (``releases/*.toml``, ``appspecs/``, the applications'
directory named by ``[node] apps_dir``, ``sys.config``): a project root that once ran a node
also holds ``releases/RELEASES``, ``releases/<vsn>/`` and ``lib/``, which would make the
copy boot that node's permanent release instead of the first version under test.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from server.release.boot import parse_release_name
from server.release.source_tree import SourceTree
from server.spec.sys_config import read_sys_config
from server.spec.toml_text import to_toml as render_toml

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["copy_sources", "release_name", "render_toml", "write_sys_config"]

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tar.gz", "*.sha256")


def copy_sources(source: Path, root: Path) -> None:
    """Copy the release sources of ``source`` into the new directory ``root``.

    Raises:
        FileNotFoundError: ``source`` lacks ``releases/``, ``appspecs/`` or the apps dir.
        ValueError: ``[node] apps_dir`` is absolute or leaves the tree.
        SpecError: ``source/sys.config`` is malformed.
    """
    apps_dir = read_sys_config(source / "sys.config").node.apps_dir
    relative = Path(apps_dir)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"{source / 'sys.config'}: [node] apps_dir must stay inside the tree")
    missing = [d for d in ("releases", "appspecs", apps_dir) if not (source / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{source} is not a release source tree: no {', '.join(m + '/' for m in missing)} "
            "(pass source= the directory holding releases/, appspecs/, apps/ and sys.config)"
        )
    root.mkdir(parents=True)
    (root / "releases").mkdir()
    for spec in sorted((source / "releases").glob("*.toml")):
        shutil.copy2(spec, root / "releases" / spec.name)
    shutil.copytree(source / "appspecs", root / "appspecs", ignore=_IGNORED)
    shutil.copytree(source / apps_dir, root / apps_dir, ignore=_IGNORED)
    if (source / "sys.config").is_file():
        shutil.copy2(source / "sys.config", root / "sys.config")


def release_name(root: Path, explicit: str | None) -> str:
    """The release under test: ``explicit``, else ``[node] release``'s, else the only one.

    Raises:
        ValueError: no name is given and the tree holds several releases (or none).
    """
    if explicit is not None:
        return explicit
    tree = SourceTree(root)
    if tree.sys_config.node.release is not None:
        return parse_release_name(tree.sys_config.node.release)[0]
    names = sorted({spec.name for spec in tree.release_specs()})
    if len(names) != 1:
        raise ValueError(
            f"which release? the tree has {', '.join(names) or 'none'} and sys.config names "
            "no [node] release: pass release="
        )
    return names[0]


def write_sys_config(
    root: Path, release: str, env: Mapping[str, Mapping[str, object]]
) -> dict[str, dict[str, object]]:
    """Rewrite ``root/sys.config``: boot ``release`` first, with ``env`` over each app's table.

    Returns:
        The env tables written (every application's, after the overrides).

    Raises:
        SpecError: the result is not a valid sys.config (an app name or a value is wrong).
        TypeError: a value cannot be written as TOML (``None``, an object).
    """
    path = root / "sys.config"
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    node = dict(data.pop("node", {}))
    node["release"] = release
    tables: dict[str, dict[str, object]] = {app: dict(values) for app, values in data.items()}
    for app, overrides in env.items():
        tables.setdefault(app, {}).update(overrides)
    text = "# written by server.testing for one upgrade test\n\n" + render_toml(
        {"node": node, **tables}
    )
    path.write_text(text, encoding="utf-8")
    read_sys_config(path)  # the node would refuse it at boot: say so now, naming the key
    return tables
