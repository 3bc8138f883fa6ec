"""The FastAPI example (``examples/fastapi``) upgraded live on a real node, under load.

Its two packages are built from a copy of the example's tree; a node (an OS process) is set
up from the 1.0.0 package on an empty root and boots it. Several clients, each on its own
keep-alive connection, keep adding notes and reading them back while the node's control
socket is asked to ``upgrade`` to 2.0.0 (what ``server upgrade`` sends) and to ``install``
1.0.0 again: no request fails, every note is kept
through both state migrations (up: each note gets no tags; down: the tags are dropped), the
new route answers in 2.0.0 only, and a WebSocket opened on 1.0.0 stays open across the
upgrade, still answered by the code it started in.
"""

from __future__ import annotations

import http.client
import threading
from typing import TYPE_CHECKING, Any

import pytest

from tests._support.nodes import NodeProcess, free_port
from tests.examples.notes import EchoSocket, LoadClient, build_example, call_json

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.node

CLIENTS = 4
ROUNDS = 10  # good rounds each client must see on a version before the test goes on


class NoteWriter:
    """One client's round: add a note tagged with the client's name, read it back.

    ``added`` maps each note's id to its text and the version that answered the add.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.rounds = 0
        self.added: dict[int, tuple[str, str]] = {}
        self.lock = threading.Lock()

    def __call__(self, conn: http.client.HTTPConnection) -> str:
        self.rounds += 1
        text = f"{self.name} note {self.rounds}"
        status, added = call_json(conn, "POST", "/notes", {"text": text, "tags": [self.name]})
        assert status == 200, (status, added)
        assert added["text"] == text, added
        vsn = added["vsn"]
        with self.lock:
            self.added[added["id"]] = (text, vsn)
        status, read = call_json(conn, "GET", f"/notes/{added['id']}")
        assert status == 200, (status, read)
        assert read["text"] == text, read
        return str(vsn)

    def snapshot(self) -> dict[int, tuple[str, str]]:
        """The notes added so far."""
        with self.lock:
            return dict(self.added)


@pytest.fixture
def example(tmp_path: Path) -> Iterator[tuple[NodeProcess, dict[str, Path]]]:
    packages = build_example(tmp_path / "example", tmp_path / "packages")
    root = tmp_path / "node"
    root.mkdir()
    port = free_port()
    (root / "sys.config").write_text(f"[notes]\nport = {port}\n")
    node = NodeProcess(root, ["run", "--release", str(packages["1.0.0"])], port).start()
    try:
        node.wait_for("release notes 1.0.0 booted")
        yield node, packages
    finally:
        node.kill()


def _more(vsn: str, client: LoadClient) -> Callable[[LoadClient], bool]:
    """Whether ``client`` has seen ``ROUNDS`` more good rounds on ``vsn`` than it has now."""
    seen = client.by_vsn[vsn]
    return lambda c: c.by_vsn[vsn] >= seen + ROUNDS


def _notes(node: NodeProcess) -> list[dict[str, Any]]:
    status, body = node.request("GET", "/notes")
    assert status == 200, body
    notes: list[dict[str, Any]] = body["notes"]
    return notes


def test_the_example_upgrades_under_load_keeping_its_notes_and_goes_back(
    example: tuple[NodeProcess, dict[str, Path]],
) -> None:
    node, packages = example
    writers = [NoteWriter(f"client{n}") for n in range(CLIENTS)]
    clients = [LoadClient(node.port, writer) for writer in writers]
    for client in clients:
        client.start()
    try:
        for client in clients:
            assert client.wait_until(_more("1.0.0", client)), client.failures
        socket = EchoSocket(node.port)
        assert socket.echo("before") == "1.0.0 before"
        assert node.request("GET", "/tags/client0")[0] == 404

        upgraded = node.control("upgrade", package=str(packages["2.0.0"]))
        assert upgraded["vsn"] == "2.0.0"
        for client in clients:
            assert client.wait_until(_more("2.0.0", client)), client.failures
        releases = {row["vsn"]: row["status"] for row in node.control("releases")}
        assert releases == {"1.0.0": "old", "2.0.0": "permanent"}
        assert socket.echo("after") == "1.0.0 after", "open across the upgrade, on its own code"
        assert node.request("GET", "/health") == (200, {"vsn": "2.0.0", "lifespan": "1.0.0"})
        socket.close()

        added = [writer.snapshot() for writer in writers]  # before the read: all in it
        notes = {note["id"]: note for note in _notes(node)}
        for writer, mine in zip(writers, added, strict=True):
            for note_id, (text, vsn) in mine.items():
                tags = [] if vsn == "1.0.0" else [writer.name]  # 1.0.0 kept no tags
                assert notes[note_id] == {"id": note_id, "text": text, "tags": tags}
        status, tagged = node.request("GET", "/tags/client0")
        assert status == 200
        tagged_ids = {note["id"] for note in tagged["notes"]}
        tagged_before = {i for i, (_, vsn) in added[0].items() if vsn == "2.0.0"}
        tagged_after = {i for i, (_, vsn) in writers[0].snapshot().items() if vsn == "2.0.0"}
        assert tagged_before <= tagged_ids <= tagged_after
        assert tagged_before, "client0 added notes on 2.0.0"

        back = node.control("install", vsn="1.0.0")  # down, through 2.0.0's code_change
        assert (back["direction"], back["modules_loaded"]) == (
            "down",
            ["notes.main", "notes.store"],
        )
        for client in clients:
            assert client.wait_until(_more("1.0.0", client)), client.failures
        # the lifespan started at boot runs on: its state (a pool, a client...) is kept
        assert node.request("GET", "/health") == (200, {"vsn": "1.0.0", "lifespan": "1.0.0"})
    finally:
        for client in clients:
            client.stop()
    assert [client.failures for client in clients] == [[]] * CLIENTS
    assert node.control("ping")["release"] == "1.0.0"
    kept = _notes(node)
    written = {i: text for writer in writers for i, (text, _) in writer.snapshot().items()}
    assert {note["id"]: note["text"] for note in kept} == written, "every note, once"
    assert all(set(note) == {"id", "text"} for note in kept), "the 1.0.0 shape again"
    assert node.request("GET", "/tags/client0")[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    try:
        status, refused = call_json(conn, "POST", "/notes", {"title": "no text"})
    finally:
        conn.close()
    assert status == 422
    assert refused["detail"][0]["loc"] == ["body", "text"], refused
    assert _notes(node) == kept, "a refused note changes nothing"
    assert not [line for line in node.complaints() if "trusted_keys" not in line]
