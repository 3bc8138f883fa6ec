"""``server dev --root``: the demo's release run from its sources by a real OS process.

Each test edits a file of a private copy of the demo tree and waits on the line the node
prints for it; what the counter answers then says whether the application was reloaded in
place (its counts kept) or restarted (its store starts again from zero).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests._support.nodes import NodeProcess, free_port, http_json, set_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.node


@pytest.fixture
def dev_node(demo_tree: Path) -> Iterator[NodeProcess]:
    """``server dev --root`` on a copy of the demo, serving and watching; killed at the end."""
    port = free_port()
    set_port(demo_tree, port)
    node = NodeProcess(demo_tree, ["dev", "--grace", "0.5"], port).start()
    try:
        node.wait_for("ready: edit a file")
        yield node
    finally:
        node.kill()


def _counter(tree: Path, module: str) -> Path:
    return tree / "apps" / "counter-1.0.0" / "counter" / f"{module}.py"


def _edit(tree: Path, module: str, old: str, new: str) -> None:
    path = _counter(tree, module)
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_release_is_served_from_its_source_folders_until_ctrl_c(
    dev_node: NodeProcess, demo_tree: Path
) -> None:
    dev_node.wait_for(f"watching {demo_tree / 'apps' / 'counter-1.0.0'} (counter)")
    assert dev_node.request("POST", "/incr/a") == (200, {"key": "a", "value": 1, "vsn": "1.0.0"})
    assert dev_node.request("GET", "/health") == (200, {"release": "1.0.0"})
    assert not (demo_tree / "releases" / "RELEASES").exists(), "nothing was built or installed"
    assert dev_node.stop(signal.SIGINT) == 0
    dev_node.wait_for("counter stopped")  # its stop callback ran


def test_an_edit_of_a_route_is_served_at_the_next_request_in_place(
    dev_node: NodeProcess, demo_tree: Path
) -> None:
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1
    _edit(demo_tree, "web", 'VSN = "1.0.0"', 'VSN = "1.0.0-edited"')
    dev_node.wait_for("reloaded counter.web")
    status, body = dev_node.request("POST", "/incr/a")
    assert (status, body["value"], body["vsn"]) == (200, 2, "1.0.0-edited"), "count kept"
    assert not [line for line in dev_node.lines if "restarted" in line]


def test_an_edit_of_the_callback_module_restarts_the_application(
    dev_node: NodeProcess, demo_tree: Path
) -> None:
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1
    _edit(demo_tree, "app", 'logger.info("counter stopped")', 'logger.info("counter stopped!")')
    dev_node.wait_for("restarted counter: counter.app is its callback module")
    dev_node.wait_for("counter stopped!")  # stopped through the controller, by the new code
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1, "a new store: restarted"


def test_an_edit_of_a_supervisor_restarts_the_application_with_its_new_children(
    dev_node: NodeProcess, demo_tree: Path
) -> None:
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1
    moved = free_port()
    _edit(demo_tree, "sup", 'port = get_env("counter", "port", 8080)', f"port = {moved}")
    dev_node.wait_for("restarted counter: counter.sup runs one of its supervisors")
    assert http_json(moved, "POST", "/incr/a") == (
        200,
        {"key": "a", "value": 1, "vsn": "1.0.0"},
    ), "the new init's listener, and a new store"
    with pytest.raises(ConnectionRefusedError):
        dev_node.request("GET", "/health")


def test_a_syntax_error_in_the_callback_module_is_refused_and_nothing_restarts(
    dev_node: NodeProcess, demo_tree: Path
) -> None:
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1
    path = _counter(demo_tree, "app")
    good = path.read_text()
    path.write_text(good + "\ndef broken(:\n")
    line = dev_node.wait_for("refused  counter.app")
    assert f"{path}:" in line
    _edit(demo_tree, "web", 'VSN = "1.0.0"', 'VSN = "1.0.1"')
    dev_node.wait_for("reloaded counter.web")  # the batch after the refused one is done
    assert not [line for line in dev_node.lines if "restarted" in line or "stopped" in line]
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 2, "the same store kept serving"


def test_an_application_that_stops_is_said_and_the_next_good_save_starts_it(
    dev_node: NodeProcess, demo_tree: Path
) -> None:
    path = _counter(demo_tree, "app")
    good = path.read_text()
    _edit(demo_tree, "app", "    pid = await", '    raise RuntimeError("boom")\n    pid = await')
    line = dev_node.wait_for("stopped  counter:")
    assert "RuntimeError: boom" in line
    assert "save a file of it to start it again" in line
    with pytest.raises(ConnectionRefusedError):
        dev_node.request("GET", "/health")
    path.write_text(good)
    dev_node.wait_for("started  counter: counter.app reloaded")
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1


LINGER = """

from server import kernel


async def start_linger() -> object:
    return kernel.spawn_link(linger)


async def linger() -> None:
    while True:  # a local loop: it stays in this version of the module until purged
        await kernel.receive()
"""


def test_a_module_whose_processes_the_purge_killed_restarts_the_application(
    dev_node: NodeProcess, demo_tree: Path
) -> None:
    store = _counter(demo_tree, "store")
    store.write_text(store.read_text() + LINGER)
    dev_node.wait_for("reloaded counter.store")
    sup = _counter(demo_tree, "sup")  # one write, so one restart
    sup.write_text(
        sup.read_text()
        .replace("import http_server\n", "import http_server\n\nimport counter.store\n")
        .replace(
            "listener],", 'listener, ChildSpec(id="linger", start=(counter.store.start_linger,))],'
        )
    )
    dev_node.wait_for("restarted counter: counter.sup runs one of its supervisors")
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1
    store.write_text(store.read_text() + "\n# edited\n")
    dev_node.wait_for("purged   counter.store: killed 1 process(es)")
    dev_node.wait_for("restarted counter: the purge of counter.store killed processes of it")
    assert dev_node.request("POST", "/incr/a")[1]["value"] == 1, "a new store: restarted"


@pytest.mark.parametrize(
    ("config", "environ", "words"),
    [
        ('port = "eighty"', {}, "port"),
        ("port = [", {}, "not valid TOML"),
        ("port = 8080", {"SERVER_CONFIG__COUNTER__PORT": "70000"}, "the environment"),
        ("port = 8080\n\n[nosuch]\nx = 1", {}, "nosuch"),
    ],
    ids=["schema", "toml", "environment", "unknown-application"],
)
def test_a_bad_config_is_one_server_line_and_nothing_starts(
    demo_tree: Path, config: str, environ: dict[str, str], words: str
) -> None:
    sys_config = demo_tree / "sys.config"
    sys_config.write_text(sys_config.read_text().replace("port = 8080", config))
    done = subprocess.run(
        [sys.executable, "-m", "server", "dev", "--root", str(demo_tree)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **environ),
    )
    assert done.returncode == 1
    assert done.stderr.startswith("server: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert words in done.stderr
    assert "started" not in done.stdout
