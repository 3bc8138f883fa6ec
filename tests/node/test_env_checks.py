"""A bad env is refused where it is written: at build, and at boot naming its layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests._support.nodes import NodeProcess, free_port, set_port
from tests._support.nodes import cli as _cli

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

pytestmark = pytest.mark.node


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[counter]\nport = "18090x"\n',
            "counter.port (from {config}): Input should be a valid integer",
        ),
        ("[ghost]\nsize = 1\n", "ghost: no application ghost in release demo 1.1.0"),
    ],
)
def test_a_build_whose_sys_config_does_not_fit_is_refused_writing_nothing(
    demo_tree: Path, table: str, expected: str
) -> None:
    config = demo_tree / "sys.config"
    config.write_text(config.read_text().split("[counter]")[0] + table)
    done = run_cli(demo_tree, "build", "demo-1.1.0")
    assert done.returncode == 1
    assert expected.format(config=config) in done.stderr
    assert not (demo_tree / "build").exists() or not list((demo_tree / "build").iterdir())


def test_a_boot_whose_own_sys_config_does_not_fit_fails_naming_the_key_and_layer(
    demo_tree: Path,
) -> None:
    port = free_port()
    set_port(demo_tree, port)
    node = NodeProcess(demo_tree, ["run"], port).start()
    node.wait_for("release demo 1.0.0 booted")
    assert node.stop() == 0
    before = (demo_tree / "releases" / "RELEASES").read_bytes()
    config = demo_tree / "sys.config"
    config.write_text(config.read_text().replace(f"port = {port}", 'port = "18090x"'))
    done = run_cli(demo_tree, "run")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("server: the env of application counter")
    assert "counter.port (from the node's sys.config)" in done.stderr
    assert "valid integer" in done.stderr
    assert (demo_tree / "releases" / "RELEASES").read_bytes() == before


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``server ARGS --root ROOT`` as a user runs it; its exit code not checked."""
    return _cli(root, *args, check=False)
