"""The harness's copy of a source tree and the sys.config it writes (pure, no event loop)."""

from __future__ import annotations

import math
import shutil
import tomllib
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import SpecError
from server.spec.sys_config import read_sys_config
from server.testing._tree import copy_sources, release_name, render_toml, write_sys_config
from tests._support.nodes import REPO

if TYPE_CHECKING:
    from pathlib import Path

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), values, max_size=5))
def test_render_toml_reads_back_as_written(table: dict[str, object]) -> None:
    assert tomllib.loads(render_toml({"app": table})) == {"app": table}


def test_render_toml_writes_infinities_and_nan() -> None:
    read = tomllib.loads(render_toml({"t": {"up": math.inf, "down": -math.inf, "no": math.nan}}))
    assert read["t"]["up"] == math.inf
    assert read["t"]["down"] == -math.inf
    assert math.isnan(read["t"]["no"])


@pytest.mark.parametrize("value", [None, object(), {1, 2}], ids=["none", "object", "set"])
def test_render_toml_refuses_what_toml_cannot_hold(value: object) -> None:
    with pytest.raises(TypeError, match=r"cannot be written to sys\.config"):
        render_toml({"t": {"k": value}})


def copy_of_the_repo(root: Path) -> Path:
    root.mkdir()
    for name in ("releases", "appspecs", "apps"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "sys.config", root / "sys.config")
    return root


def test_only_the_release_sources_are_copied(tmp_path: Path) -> None:
    source = copy_of_the_repo(tmp_path / "source")
    # what a root that once ran a node also holds
    (source / "releases" / "RELEASES").write_text("{}")
    (source / "releases" / "1.0.0").mkdir()
    (source / "lib" / "counter-1.0.0").mkdir(parents=True)
    (source / "apps" / "counter-1.0.0" / "counter" / "__pycache__").mkdir()
    copy_sources(source, tmp_path / "copy")
    copy = tmp_path / "copy"
    assert sorted(p.name for p in (copy / "releases").iterdir()) == [
        "demo-1.0.0.toml",
        "demo-1.1.0.toml",
        "demo-2.0.0.toml",
        "demo-2.1.0.toml",
    ]
    assert not (copy / "lib").exists()
    assert not list(copy.rglob("__pycache__"))
    assert (copy / "apps" / "counter-2.0.0" / "counter" / "store.py").is_file()
    assert (copy / "sys.config").read_bytes() == (source / "sys.config").read_bytes()


def test_a_directory_that_is_no_source_tree_is_named(tmp_path: Path) -> None:
    (tmp_path / "releases").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no appspecs/, apps/") as info:
        copy_sources(tmp_path, tmp_path / "copy")
    assert "pass source=" in str(info.value)
    assert not (tmp_path / "copy").exists()


def test_an_apps_dir_outside_the_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sys.config").write_text('[node]\napps_dir = "../elsewhere"\n')
    with pytest.raises(ValueError, match="apps_dir must stay inside the tree"):
        copy_sources(tmp_path, tmp_path / "copy")


def test_sys_config_boots_the_first_version_with_the_overrides(tmp_path: Path) -> None:
    root = copy_of_the_repo(tmp_path / "root")
    tables = write_sys_config(
        root, "demo-1.1.0", {"counter": {"port": 0, "greeting": 'hé "there"'}, "stats": {"a": 1}}
    )
    assert tables == {"counter": {"port": 0, "greeting": 'hé "there"'}, "stats": {"a": 1}}
    config = read_sys_config(root / "sys.config")
    assert config.node.release == "demo-1.1.0"
    assert config.node.name == "demo", "the other node settings are kept"
    assert config.env == tables


def test_an_override_the_node_would_refuse_is_refused_now(tmp_path: Path) -> None:
    root = copy_of_the_repo(tmp_path / "root")
    with pytest.raises(SpecError, match="Bad-Name"):
        write_sys_config(root, "demo-1.0.0", {"Bad-Name": {"port": 1}})


def test_the_release_name_is_given_or_found(tmp_path: Path) -> None:
    root = copy_of_the_repo(tmp_path / "root")
    assert release_name(root, "other") == "other"
    assert release_name(root, None) == "demo", "from [node] release"
    (root / "sys.config").write_text('[node]\nname = "x"\n')
    assert release_name(root, None) == "demo", "the tree's only release"
    (root / "releases" / "extra-1.0.0.toml").write_text(
        'name = "extra"\nvsn = "1.0.0"\n\n[[applications]]\nname = "counter"\nvsn = "1.0.0"\n'
    )
    with pytest.raises(ValueError, match="the tree has demo, extra"):
        release_name(root, None)
