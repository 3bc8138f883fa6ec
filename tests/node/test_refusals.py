"""The release commands as an operator meets them: refusals that say what to do, --json, logs.

A real node on a copy of the demo, the CLI run as a user runs it.
"""

from __future__ import annotations

import json
import zipfile
from typing import TYPE_CHECKING

import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import NodeProcess, cli, statuses

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.node


def refused(node: NodeProcess, *args: str) -> str:
    done = cli(node.root, *args, check=False)
    assert done.returncode == 1, done.stdout
    return done.stderr.strip()


def test_release_commands_say_what_to_do_and_answer_json(demo_node: NodeProcess) -> None:
    root = demo_node.root
    package = build_package(SourceTree(root), "demo", "1.1.0", root / "build").path
    assert "release 1.0.0 is already running: nothing to install" in refused(
        demo_node, "install", "1.0.0"
    )
    cli(root, "unpack", str(package))
    assert "release 1.1.0 is already unpacked (unpacked): run `server install 1.1.0`" in refused(
        demo_node, "upgrade", str(package)
    )
    report = json.loads(cli(root, "install", "1.1.0", "--json").stdout)
    assert (report["from_vsn"], report["to_vsn"], report["direction"]) == ("1.0.0", "1.1.0", "up")
    assert [p[1] for p in report["processes"]] == ["counter.store"]  # workers only
    assert "release 1.1.0 is already running: nothing to upgrade" in refused(
        demo_node, "upgrade", str(package)
    )
    back = json.loads(cli(root, "rollback", "--json").stdout)
    assert back["vsn"] == "1.0.0"
    assert "nothing to roll back to: 1.0.0 is the only release made permanent " in refused(
        demo_node, "rollback"
    )
    assert "(permanent history: 1.0.0)" in refused(demo_node, "rollback")
    installed = [
        line for line in demo_node.lines if "release 1.1.0 installed (up from 1.0.0)" in line
    ]
    assert len(installed) == 1
    assert "report=release_installed" in installed[0]
    assert "processes_migrated=1" in installed[0]


def test_reload_config_applies_the_nodes_sys_config_or_refuses_it_changing_nothing(
    demo_node: NodeProcess,
) -> None:
    root = demo_node.root
    config = root / "sys.config"
    text = config.read_text()
    key = "k" * 90
    assert demo_node.request("POST", f"/incr/{key}")[0] == 400  # over the spec's 64
    config.write_text(text.replace("[counter]", "[counter]\nmax_key_length = 99"))
    done = cli(root, "reload-config")
    assert "config reloaded for release 1.0.0: counter config_change -> 'ok'" in done.stdout
    assert demo_node.request("POST", f"/incr/{key}")[0] == 200
    assert any("counter env changed" in line for line in demo_node.lines)
    rows = {r["key"]: r for r in json.loads(cli(root, "env", "counter", "--json").stdout)}
    assert (rows["max_key_length"]["value"], rows["max_key_length"]["source"]) == (
        99,
        "the node's sys.config",
    )
    config.write_text(text.replace("[counter]", '[counter]\nmax_key_length = "many"'))
    message = refused(demo_node, "reload-config")
    assert "counter.max_key_length (from the node's sys.config)" in message
    assert demo_node.request("POST", f"/incr/{key}")[0] == 200  # still 99


def _require(root: Path, vsn: str, requirement: str) -> None:
    spec = root / "appspecs" / f"counter-{vsn}.toml"
    text = spec.read_text()
    spec.write_text(
        text.replace("applications = []", f"applications = []\nrequires = [{requirement!r}]")
    )


def test_a_release_needing_a_missing_distribution_is_refused_at_unpack_naming_it(
    demo_node: NodeProcess,
) -> None:
    root = demo_node.root
    _require(root, "1.1.0", "no-such-distribution>=1")
    package = build_package(SourceTree(root), "demo", "1.1.0", root / "build").path
    before = (root / "releases" / "RELEASES").read_bytes()
    message = refused(demo_node, "unpack", str(package))
    assert "counter needs no-such-distribution>=1: no-such-distribution is not installed" in message
    assert (root / "releases" / "RELEASES").read_bytes() == before
    assert not (root / "releases" / "1.1.0").exists()
    assert not (root / "lib" / "counter-1.1.0").exists()


def test_a_release_whose_requirements_differ_cannot_be_installed_module_by_module(
    demo_node: NodeProcess,
) -> None:
    root = demo_node.root
    _require(root, "1.1.0", "packaging>=20")  # installed beside the server: met
    package = build_package(SourceTree(root), "demo", "1.1.0", root / "build").path
    cli(root, "unpack", str(package))
    for command in ("check", "install"):
        message = refused(demo_node, command, "1.1.0")
        assert "the relup from 1.0.0 to 1.1.0 says restart_new_emulator" in message
        assert "`server install 1.1.0 --restart`" in message
    failed = [line for line in demo_node.lines if "report=release_operation_failed" in line]
    assert [line.split(": ", 1)[1].split(" failed")[0] for line in failed] == [
        "check_install 1.1.0",
        "install 1.1.0",
    ]
    assert demo_node.request("GET", "/health") == (200, {"release": "1.0.0"})
    pid = demo_node.process.pid
    done = cli(root, "install", "1.1.0", "--restart")
    assert "node restarting into release 1.1.0" in done.stdout
    demo_node.wait_for("release demo 1.1.0 booted")
    assert demo_node.process.poll() is None
    assert demo_node.process.pid == pid  # the same OS process, a new interpreter in it
    assert demo_node.request("GET", "/health") == (200, {"release": "1.1.0"})
    assert statuses(root) == {"1.0.0": "permanent", "1.1.0": "current"}
    assert demo_node.stop() == 0  # restarted before make_permanent: back to 1.0.0
    again = NodeProcess(root, ["run"], demo_node.port).start()
    try:
        again.wait_for("release demo 1.0.0 booted")
        assert again.request("GET", "/health") == (200, {"release": "1.0.0"})
        assert statuses(root) == {"1.0.0": "permanent", "1.1.0": "unpacked"}
        cli(root, "install", "1.1.0", "--restart")
        again.wait_for("release demo 1.1.0 booted")
        cli(root, "permanent", "1.1.0")
        assert again.stop() == 0
    finally:
        again.kill()
    kept = NodeProcess(root, ["run"], demo_node.port).start()
    try:
        kept.wait_for("release demo 1.1.0 booted")  # made permanent: it stays
        assert statuses(root) == {"1.0.0": "old", "1.1.0": "permanent"}
    finally:
        kept.kill()


def _tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel of distribution ``tinylib`` 1.0 (module ``tinylib``)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "tinylib-1.0-py3-none-any.whl"
    info = "tinylib-1.0.dist-info"
    files = {
        "tinylib.py": "VALUE = 'bundled'\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: tinylib\nVersion: 1.0\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/RECORD": "",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def test_a_bundled_distribution_is_what_the_node_lacks_and_the_new_release_imports(
    demo_node: NodeProcess, tmp_path: Path
) -> None:
    root = demo_node.root
    wheels = _tiny_wheel(tmp_path / "wheels").parent
    _require(root, "1.1.0", "tinylib==1.0")
    web = root / "apps" / "counter-1.1.0" / "counter" / "web.py"
    web.write_text(
        web.read_text().replace(
            'VSN = "1.1.0"', 'import tinylib\n\nVSN = "1.1.0" + tinylib.VALUE[:0]'
        )
    )
    plain = build_package(SourceTree(root), "demo", "1.1.0", tmp_path / "plain").path
    assert "tinylib is not installed" in refused(demo_node, "unpack", str(plain))
    built = cli(
        root,
        "build",
        "demo-1.1.0",
        "--bundle-deps",
        "--wheels",
        str(wheels),
        "--out",
        str(tmp_path / "bundled"),
    )
    assert built.returncode == 0
    package = tmp_path / "bundled" / "demo-1.1.0.tar.gz"
    cli(root, "unpack", str(package))
    assert (root / "releases" / "1.1.0" / "deps" / "tinylib.py").is_file()
    assert "says restart_new_emulator" in refused(demo_node, "install", "1.1.0")
    cli(root, "install", "1.1.0", "--restart")
    demo_node.wait_for("release demo 1.1.0 booted")
    assert demo_node.request("GET", "/health") == (200, {"release": "1.1.0"})
    assert demo_node.request("POST", "/incr/k")[1]["vsn"] == "1.1.0"  # web imported tinylib
