"""Building release packages from a source tree: layout, checksum, appup coverage."""

from __future__ import annotations

import hashlib
import json
import tarfile
from typing import TYPE_CHECKING

import pytest

from server.errors import BuildError, SpecError
from server.release.package import build_package
from server.release.source_tree import SourceTree, vsn_key

if TYPE_CHECKING:
    from pathlib import Path


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {info.name: info for info in tar.getmembers()}


def test_the_demo_releases_build_with_relups_both_ways(demo_tree: Path, tmp_path: Path) -> None:
    tree = SourceTree(demo_tree)
    out = tmp_path / "out"
    built = build_package(tree, "demo", "2.0.0", out)
    assert built.path == out / "demo-2.0.0.tar.gz"
    data = built.path.read_bytes()
    assert built.sha256 == hashlib.sha256(data).hexdigest()
    assert (out / "demo-2.0.0.tar.gz.sha256").read_text() == f"{built.sha256}  demo-2.0.0.tar.gz\n"
    names = members(built.path)
    for expected in (
        "releases/2.0.0/release.toml",
        "releases/2.0.0/sys.config",
        "releases/2.0.0/relup.json",
        "lib/counter-2.0.0/app.toml",
        "lib/counter-2.0.0/counter/store.py",
        "lib/stats-1.0.0/stats/server.py",
    ):
        assert expected in names
    assert all(info.isfile() or info.isdir() for info in names.values())
    assert not any(name.startswith("/") or ".." in name.split("/") for name in names)
    assert [e.vsn for e in built.relup.up] == ["1.0.0", "1.1.0"]
    assert [e.vsn for e in built.relup.down] == ["1.0.0", "1.1.0"]
    with tarfile.open(built.path) as tar:
        extracted = tar.extractfile("releases/2.0.0/relup.json")
        assert extracted is not None
        relup = json.loads(extracted.read())
    assert relup["vsn"] == "2.0.0"
    up = built.relup.up_from("1.1.0")
    assert up is not None
    ops = [step.op for step in up.instructions]
    assert ops.index("load_object_code") < ops.index("point_of_no_return")
    assert ops[-1] == "load", "the counter web module loads after stats has started"


def test_a_package_is_reproducible(demo_tree: Path, tmp_path: Path) -> None:
    tree = SourceTree(demo_tree)
    first = build_package(tree, "demo", "1.1.0", tmp_path / "a")
    (demo_tree / "apps" / "counter-1.1.0" / "counter" / "__pycache__").mkdir()
    second = build_package(tree, "demo", "1.1.0", tmp_path / "b")
    assert first.sha256 == second.sha256


def test_a_changed_module_no_appup_mentions_is_refused(demo_tree: Path, tmp_path: Path) -> None:
    sup = demo_tree / "apps" / "counter-1.1.0" / "counter" / "sup.py"
    sup.write_text(sup.read_text() + "\n# changed\n")
    out = tmp_path / "out"
    with pytest.raises(BuildError, match=r"changed modules not mentioned: counter\.sup") as info:
        build_package(SourceTree(demo_tree), "demo", "1.1.0", out)
    assert "--default-appups" in str(info.value)
    assert not out.exists(), "nothing written"


def test_default_appups_choose_and_say_what(demo_tree: Path, tmp_path: Path) -> None:
    app_dir = demo_tree / "apps" / "counter-1.1.0" / "counter"
    (app_dir / "sup.py").write_text((app_dir / "sup.py").read_text() + "\n# changed\n")
    (app_dir / "extra.py").write_text('"""A new helper."""\n')
    spec = demo_tree / "appspecs" / "counter-1.1.0.toml"
    spec.write_text(spec.read_text().replace('"counter.web"]', '"counter.web", "counter.extra"]'))
    built = build_package(SourceTree(demo_tree), "demo", "1.1.0", tmp_path, default_appups=True)
    notes = "\n".join(built.notes)
    assert "counter.sup: chose load_module" in notes
    assert "appup.up '1.0.0'" in notes
    assert "counter.extra: chose add_module" in notes
    assert "counter.extra: chose delete_module" in notes, "and on the way down it goes"
    up = built.relup.up_from("1.0.0")
    assert up is not None
    loaded = [s.module for s in up.instructions if s.op == "load"]
    assert {"counter.sup", "counter.extra"} <= set(loaded)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            lambda root: (root / "apps" / "counter-1.0.0" / "counter" / "web.py").unlink(),
            "module counter.web is listed .* but has no source file",
            id="listed-module-without-source",
        ),
        pytest.param(
            lambda root: (root / "apps" / "counter-1.0.0" / "counter" / "stray.py").write_text(""),
            "stray.py is not listed in the modules",
            id="source-not-listed",
        ),
        pytest.param(
            lambda root: (root / "releases" / "demo-1.0.0.toml").rename(
                root / "releases" / "demo-1.toml"
            ),
            "demo-1.toml:\n  the file must be named demo-1.0.0.toml",
            id="release-spec-misnamed",
        ),
        pytest.param(
            lambda root: (root / "appspecs" / "counter-1.0.0.toml").write_text(
                (root / "appspecs" / "counter-1.0.0.toml")
                .read_text()
                .replace('vsn = "1.0.0"', 'vsn = "1.0.1"')
            ),
            "describes counter 1.0.1, not counter 1.0.0",
            id="app-spec-names-another-version",
        ),
    ],
)
def test_inconsistent_sources_are_refused_before_writing(
    demo_tree: Path, tmp_path: Path, edit: object, expected: str
) -> None:
    edit(demo_tree)  # type: ignore[operator]
    out = tmp_path / "out"
    with pytest.raises(BuildError, match=expected):
        build_package(SourceTree(demo_tree), "demo", "1.0.0", out)
    assert not out.exists()


def test_dependencies_must_come_first_in_the_release(demo_tree: Path, tmp_path: Path) -> None:
    spec = demo_tree / "appspecs" / "counter-2.0.0.toml"
    spec.write_text(spec.read_text().replace("applications = []", 'applications = ["stats"]'))
    release = demo_tree / "releases" / "demo-2.0.0.toml"
    text = release.read_text()
    stats, counter = text.split("[[applications]]")[1:]
    release.write_text(
        text.split("[[applications]]")[0]
        + "[[applications]]"
        + counter
        + "[[applications]]"
        + stats
    )
    with pytest.raises(BuildError, match="depends on stats, which must come before it"):
        build_package(SourceTree(demo_tree), "demo", "2.0.0", tmp_path / "out")


def test_a_malformed_spec_names_file_and_field(demo_tree: Path, tmp_path: Path) -> None:
    spec = demo_tree / "appspecs" / "counter-1.0.0.toml"
    spec.write_text(spec.read_text().replace("[env]", "colour = 1\n[env]"))
    with pytest.raises(SpecError, match=r"counter-1\.0\.0\.toml.*colour: unknown key"):
        build_package(SourceTree(demo_tree), "demo", "1.0.0", tmp_path / "out")


def test_versions_sort_numerically() -> None:
    assert sorted(["1.10.0", "1.9.0", "2.0.0", "1.0.0"], key=vsn_key) == [
        "1.0.0",
        "1.9.0",
        "1.10.0",
        "2.0.0",
    ]
