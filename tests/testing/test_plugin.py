"""The pytest plugin as users get it: registered by installing the package, once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import server.testing.pytest_plugin
from server.testing import upgrades
from tests._support.nodes import REPO

# Written once the plugins are loaded, before any test module is imported.
USER_CONFTEST = """
import json
import sys
from pathlib import Path


def pytest_configure(config):
    loaded = "server.testing.upgrades" in sys.modules
    Path("startup.json").write_text(json.dumps(loaded))
"""

# A user's project: the demo's sources, a pytest.ini, and tests that use the fixture.
USER_TESTS = """
import json
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_default_source_is_the_project(upgrade_harness, free_tcp_port) -> None:
    h = await upgrade_harness(["1.0.0", "1.1.0"], env={"counter": {"port": free_tcp_port}})
    assert h.source == Path(__file__).resolve().parent
    await h.call("counter_store", ("incr", "a"))
    steps = await h.chain()
    assert [s.to_vsn for s in steps] == ["1.0.0", "1.1.0", "1.0.0"]


async def test_a_failing_check_fails_the_test(upgrade_harness, free_tcp_port) -> None:
    h = await upgrade_harness(["1.0.0", "1.1.0"], env={"counter": {"port": free_tcp_port}})
    Path("scratch.json").write_text(json.dumps(str(h.scratch)))

    async def at_1_1_0(step) -> None:
        assert await h.state("counter_store") == {"a": 1}

    await h.chain({"1.1.0": at_1_1_0})
"""


def docstring_example() -> str:
    """The example of ``server.testing.upgrades``'s docstring, as a test module's text."""
    doc = upgrades.__doc__
    assert doc is not None
    _, _, rest = doc.partition("::\n\n")
    example, _, _ = rest.partition("\n\nWithout pytest")
    return textwrap.dedent(example)


def test_the_package_registers_the_plugin_through_pytest11(
    request: pytest.FixtureRequest,
) -> None:
    (entry,) = entry_points(group="pytest11", name="server-testing")
    assert entry.value == "server.testing.pytest_plugin"
    plugin = request.config.pluginmanager.get_plugin("server-testing")
    assert plugin is server.testing.pytest_plugin
    names = [
        name
        for name, registered in request.config.pluginmanager.list_name_plugin()
        if registered is plugin
    ]
    assert names == ["server-testing"], "registered once, by its entry point"


@pytest.mark.node
def test_a_project_with_the_package_installed_gets_the_fixture(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("releases", "appspecs", "apps"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "sys.config", project / "sys.config")
    (project / "pytest.ini").write_text("[pytest]\nanyio_mode = auto\n")
    (project / "test_upgrades.py").write_text(textwrap.dedent(USER_TESTS))
    (project / "test_docstring_example.py").write_text(docstring_example())
    (project / "conftest.py").write_text(USER_CONFTEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "1 failed, 2 passed" in output, output
    assert "FAILED test_upgrades.py::test_a_failing_check_fails_the_test" in output, output
    loaded = json.loads((project / "startup.json").read_text())
    assert loaded is False, "pytest started without importing the harness"
    assert "UpgradeFailed: step 1/2 (up 1.0.0 -> 1.1.0): the check failed" in output, output
    scratch = Path(json.loads((project / "scratch.json").read_text()))
    assert scratch.name.startswith("upgrade-harness-")
    assert not scratch.exists(), "removed although the test failed"
