"""The observer without a browser: its settings, its token, its routes and its event feed.

The demo boots in the test's own node (``tests.release._live``) with ``[node.observer]``
in its sys.config; HTTP requests go from a worker thread to the real listener.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import kernel, observer
from server.behaviours import supervisor
from server.errors import ControlError, InstallFailed, SpecError, StartError
from server.node import node_commands
from server.release import handler
from server.release.install_feed import InstallEvent
from server.spec.sys_config import ObserverSettings, read_sys_config
from tests.behaviours._helpers import recv
from tests.release._live import boot_demo, stop_demo
from tests.release._variants import make_variant

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node


#: A ``code_change`` that fails for the counter store only (after the point of no return).
FAILS_FOR_THE_STORE = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    raise ValueError("migration bug")
return dict(state)
"""


def _request(
    url: str, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    address = url.split("/")[2]
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


async def _http(url: str, method: str, path: str, **headers: str) -> tuple[int, bytes]:
    status, body, _ = await anyio.to_thread.run_sync(_request, url, method, path, headers)
    return status, body


def _observed(root: Path, extra: str = "") -> None:
    with (root / "sys.config").open("a") as config:
        config.write(f"\n[node.observer]\nport = 0\ninterval = 0.2\n{extra}")


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("port = 70000", "port"),
        ("port = -1", "port"),
        ("host = ''", "host"),
        ("interval = 0", "interval"),
        ("colour = 'blue'", "colour"),
    ],
    ids=["port-too-big", "port-negative", "host-empty", "interval-zero", "unknown-key"],
)
def test_a_bad_observer_table_is_refused_naming_its_field(
    tmp_path: Path, table: str, field: str
) -> None:
    path = tmp_path / "sys.config"
    path.write_text(f"[node.observer]\n{table}\n")
    with pytest.raises(SpecError) as refused:
        read_sys_config(path)
    assert field in str(refused.value)
    assert path.read_text() == f"[node.observer]\n{table}\n", "the file is left as it was"


def test_the_observer_is_off_unless_its_table_is_there(tmp_path: Path) -> None:
    path = tmp_path / "sys.config"
    path.write_text("[node]\nname = 'n'\n")
    assert read_sys_config(path).node.observer is None
    path.write_text("[node.observer]\n")
    assert read_sys_config(path).node.observer == ObserverSettings()
    assert ObserverSettings().host == "127.0.0.1", "loopback by default"


async def test_server_observer_says_how_to_switch_it_on(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            assert observer.observer_url() is None
            with pytest.raises(ControlError, match=r"add a \[node.observer\] table"):
                await node_commands(demo.boot)["observer"]({}, lambda _: None)
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_a_port_in_use_fails_the_start_and_names_it(node: Node) -> None:
    async def body() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(StartError, match=str(port)):
                await observer.start_link(ObserverSettings(port=port), kernel.self())
        assert kernel.whereis(observer.NAME) is None, "nothing left registered"

    await node.run_process(body)


async def test_a_port_in_use_fails_the_supervised_start_and_names_it(node: Node) -> None:
    async def body() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(StartError, match=str(port)):
                await observer.start_supervisor(ObserverSettings(port=port), kernel.self())
        assert kernel.whereis(observer.NAME) is None, "nothing left registered"
        assert kernel.whereis(observer.SUPERVISOR) is None

    await node.run_process(body)


async def test_a_crashed_observer_is_started_again_with_the_same_token(node: Node) -> None:
    async def body() -> None:
        await observer.start_supervisor(ObserverSettings(port=0), kernel.self())
        first = kernel.whereis(observer.NAME)
        url = observer.observer_url()
        assert first is not None
        assert url is not None
        token = url.split("token=")[1]
        ref = kernel.monitor(first)
        kernel.exit(first, kernel.KILL)  # a crash, as a bug in it would end it
        await recv(lambda m: isinstance(m, kernel.DownMessage) and m.ref is ref, step="down")
        (child,) = await supervisor.which_children(observer.SUPERVISOR)
        assert child.pid is not None
        assert child.pid != first
        assert kernel.whereis(observer.NAME) == child.pid
        again = observer.observer_url()
        assert again is not None
        assert again.split("token=")[1] == token, "the URL a page has keeps working"
        status, _ = await _http(again, "GET", f"/?token={token}")
        assert status == 200

    await node.run_process(body)


async def test_routes_answer_with_the_token_and_refuse_bad_requests(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    _observed(demo_tree)

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            said = await node_commands(demo.boot)["observer"]({}, lambda _: None)
            assert isinstance(said, dict)
            url = said["url"]
            assert isinstance(url, str)
            assert url == observer.observer_url()
            token = url.split("token=")[1]
            q = f"token={token}"
            assert (await _http(url, "GET", "/api/overview"))[0] == 401
            bearer = await _http(url, "GET", "/api/overview", authorization=f"Bearer {token}")
            assert bearer[0] == 200
            cookie = await _http(url, "GET", "/api/overview", cookie=f"observer_token={token}")
            assert json.loads(cookie[1])["release"]["vsn"] == "1.0.0"
            status, _, headers = await anyio.to_thread.run_sync(_request, url, "GET", f"/?{q}")
            assert status == 200
            assert f"observer_token={token}; HttpOnly" in headers["set-cookie"]
            for view in observer.VIEWS:
                status, answer = await _http(url, "GET", f"/api/{view}?{q}")
                assert status == 200, view
                json.loads(answer)
            refusals = [
                ("GET", f"/api/nothing?{q}", 404, b"no view '/api/nothing'"),
                ("GET", f"/events?view=nothing&{q}", 404, b"no view 'nothing'"),
                ("GET", f"/api/process?pid=%3C9.9.9%3E&{q}", 404, b"no live process"),
                ("GET", f"/api/kill?pid=%3C0.1.0%3E&{q}", 405, b"with POST"),
                ("POST", f"/api/kill?pid=nobody&{q}", 404, b"no live process 'nobody'"),
                ("POST", f"/?{q}", 405, b"GET only"),
                ("GET", f"/static/secrets.txt?{q}", 404, b"no such file"),
                ("GET", f"/elsewhere?{q}", 404, b"no such page"),
            ]
            before = len(kernel.processes())
            for method, path, expected, words in refusals:
                status, answer = await _http(url, method, path)
                assert (status, words in answer) == (expected, True), (path, answer)
            assert len(kernel.processes()) == before, "nothing was killed"
            status, text = await _http(url, "GET", f"/metrics?{q}")
            names = {family.name for family in text_string_to_metric_families(text.decode())}
            assert status == 200
            assert "server_processes" in names
            assert (await _http(url, "GET", "/metrics"))[0] == 401
        finally:
            await stop_demo(demo)
        assert kernel.whereis(observer.NAME) is None, "stopped with the node"

    await node.run_process(body)


async def test_metrics_may_be_left_open_and_nothing_else_is(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    _observed(demo_tree, "metrics_token = false\n")

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            url = observer.observer_url()
            assert url is not None
            assert (await _http(url, "GET", "/metrics"))[0] == 200
            assert (await _http(url, "GET", "/api/overview"))[0] == 401
        finally:
            await stop_demo(demo)

    await node.run_process(body)


def _open_stream(url: str) -> socket.socket:
    """A page's push stream, read up to its first view; the socket stays open."""
    address = url.split("/")[2]
    host, port = address.rsplit(":", 1)
    token = url.split("token=")[1]
    stream = socket.create_connection((host, int(port)), timeout=10)
    stream.sendall(f"GET /events?view=trees&token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    seen = b""
    while b"event: view" not in seen:
        chunk = stream.recv(65536)
        assert chunk, "the stream ended before its first view"
        seen += chunk
    assert seen.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/event-stream" in seen.lower()
    assert b"event: install_history\ndata: []" in seen
    return stream


async def test_a_closed_page_ends_its_stream_quietly(
    node: Node, demo_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _observed(demo_tree)

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            url = observer.observer_url()
            assert url is not None
            stream = await anyio.to_thread.run_sync(_open_stream, url)
            (connection,) = [
                pid
                for pid in kernel.processes()
                if dict(getattr(kernel.process_info(pid), "labels", ())).get("behaviour")
                == "asgi_connection"
            ]
            ref = kernel.monitor(connection)
            stream.close()
            down = await recv(
                lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="stream's end"
            )
            assert isinstance(down, kernel.DownMessage)
            assert down.reason == "normal"
        finally:
            await stop_demo(demo)
        assert [r for r in caplog.records if r.levelname == "ERROR"] == []

    await node.run_process(body)


#: A ``code_change`` that tells the test it runs, then waits for its ``go``.
WAITS_FOR_GO = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    kernel.send("install_probe", "in_code_change")
    await kernel.receive(lambda m: m == "go")
return dict(state)
"""


def _installs(seen: bytes | bytearray) -> list[dict[str, Any]]:
    """The ``install`` events among the stream's complete events so far."""
    found = []
    for event in seen.split(b"\n\n")[:-1]:
        kind, _, data = event.partition(b"\ndata: ")
        if kind.endswith(b"event: install"):
            found.append(json.loads(data))
    return found


def _read_until(stream: socket.socket, seen: bytearray, step: str, outcome: str) -> None:
    """Read the stream into ``seen`` until an install event of ``step`` and ``outcome``.

    Views keep coming every interval, so the read is bounded by a deadline of its own.
    """
    deadline = time.monotonic() + 15
    while not any(e["step"] == step and e["outcome"] == outcome for e in _installs(seen)):
        assert time.monotonic() < deadline, f"no install {step} in the stream: {bytes(seen)!r}"
        chunk = stream.recv(65536)
        assert chunk, f"the stream ended before the install's {step}"
        seen += chunk


async def test_a_page_gets_the_install_step_while_it_runs(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_variant(demo_tree, "1.0.1", WAITS_FOR_GO)
    _observed(demo_tree)

    async def body() -> None:
        kernel.register("install_probe", kernel.self())
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            url = observer.observer_url()
            assert url is not None
            await handler.unpack(demo.package("1.0.1"))
            stream = await anyio.to_thread.run_sync(_open_stream, url)
            me = kernel.self()

            async def install() -> None:
                report = await handler.install("1.0.1")
                kernel.send(me, ("installed", report.to_vsn))

            kernel.spawn(install)
            await recv(lambda m: m == "in_code_change", step="code_change under way")
            seen = bytearray()
            await anyio.to_thread.run_sync(_read_until, stream, seen, "code_change", "running")
            (step,) = [e for e in _installs(seen) if e["step"] == "code_change"]
            assert (step["to_vsn"], step["suspended"]) == ("1.0.1", 1)
            assert all(e["outcome"] == "running" for e in _installs(seen)), "still under way"
            kernel.send(kernel.whereis("counter_store"), "go")  # type: ignore[arg-type]
            await recv(lambda m: m == ("installed", "1.0.1"), step="installed")
            await anyio.to_thread.run_sync(_read_until, stream, seen, "done", "done")
            stream.close()
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_a_subscriber_sees_each_step_of_a_real_install(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    _observed(demo_tree)

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            assert await observer.subscribe() == [], "no install yet"
            vsn = await handler.unpack(demo.package("1.1.0"))
            await handler.install(vsn)
            events: list[dict[str, Any]] = []
            while not events or events[-1]["outcome"] == "running":
                message = await recv(lambda m: isinstance(m, tuple), step="install event")
                assert isinstance(message, tuple)
                events.append(message[1])
            steps = [event["step"] for event in events]
            assert steps[0] == "suspend"
            assert "code_change" in steps
            assert events[-1] == {
                **events[-1],
                "step": "done",
                "outcome": "done",
                "from_vsn": "1.0.0",
                "to_vsn": "1.1.0",
                "suspended": 0,
                "error": None,
            }
            assert events[-1]["migrated"] >= 1
            assert [e["index"] for e in events] == list(range(len(events)))
            assert await observer.subscribe() == events, "a page opened later gets them all"
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_a_failed_install_ends_its_events_with_the_error(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_variant(demo_tree, "1.0.1", FAILS_FOR_THE_STORE)
    _observed(demo_tree)

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await observer.subscribe()
            await handler.unpack(demo.package("1.0.1"))
            with pytest.raises(InstallFailed, match="migration bug"):
                await handler.install("1.0.1")
            events: list[dict[str, Any]] = []
            while not events or events[-1]["outcome"] == "running":
                message = await recv(lambda m: isinstance(m, tuple), step="install event")
                assert isinstance(message, tuple)
                events.append(message[1])
            last = events[-1]
            assert (last["step"], last["outcome"], last["to_vsn"]) == (
                "code_change",
                "rolled_back",
                "1.0.1",
            )
            assert "migration bug" in last["error"]
            assert all(event["error"] is None for event in events[:-1])
        finally:
            await stop_demo(demo)

    await node.run_process(body)


def test_an_install_event_is_plain_data() -> None:
    event = InstallEvent("1.0.0", "1.1.0", "load", 2, 5, 1, 0)
    assert event.as_json() == {
        "from_vsn": "1.0.0",
        "to_vsn": "1.1.0",
        "step": "load",
        "index": 2,
        "total": 5,
        "suspended": 1,
        "migrated": 0,
        "error": None,
        "outcome": "running",
    }
