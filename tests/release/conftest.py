from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_tree(tmp_path: Path) -> Path:
    """A private copy of the repository's release sources (specs, apps, sys.config)."""
    root = tmp_path / "tree"
    root.mkdir()
    for name in ("releases", "appspecs", "apps"):
        shutil.copytree(
            REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.tar.gz")
        )
    shutil.copy(REPO / "sys.config", root / "sys.config")
    return root
