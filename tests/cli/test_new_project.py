"""``server new``: a project that runs its own tests, builds a package and boots."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


def server(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_new_project_passes_its_own_tests_and_builds(tmp_path: Path) -> None:
    done = server("new", "shop", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "created shop (14 files): cd shop && make test"
    project = tmp_path / "shop"
    assert (project / "apps" / "shop-0.1.0" / "shop" / "store.py").is_file()
    assert "anyio_mode" in (project / "pyproject.toml").read_text()
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
    built = server("build", "--root", str(project), cwd=project)
    assert built.returncode == 0, built.stderr
    assert (project / "build" / "shop-0.1.0.tar.gz").is_file()


@pytest.mark.parametrize("name", ["Shop", "9lives", "my-shop"])
def test_a_name_that_is_no_package_name_is_refused(tmp_path: Path, name: str) -> None:
    done = server("new", str(tmp_path / "x"), "--name", name, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"server: {name!r} cannot name a project")
    assert not (tmp_path / "x").exists()


def test_a_folder_in_use_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "notes.txt").write_text("mine")
    done = server("new", "shop", cwd=tmp_path)
    assert done.returncode == 1
    assert "is not empty" in done.stderr
    assert [p.name for p in (tmp_path / "shop").iterdir()] == ["notes.txt"]
