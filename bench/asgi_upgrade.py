"""The FastAPI example upgraded live by a node under load, against uvicorn's ``--reload``.

Both servers are real OS processes on loopback serving the same app, the example's
``notes.main`` (``examples/fastapi``), under the same load, in the same run:

- **node**: a node set up from the example's 1.0.0 package boots it; the upgrade is
  ``upgrade notes-2.0.0.tar.gz`` over its control socket (unpack + install + permanent, as
  ``server upgrade`` sends it): the next request runs 2.0.0, one in flight finishes on
  1.0.0, a WebSocket keeps running the code it started in.
- **uvicorn --reload** (the baseline): uvicorn serves a copy of the 1.0.0 source folder
  with ``--reload`` watching it; the upgrade is writing 2.0.0's ``notes/main.py`` over
  1.0.0's, upon which uvicorn replaces its worker process (its restart-based reload).
  Skipped with a line saying so when uvicorn is not installed
  (``pip install uvicorn httptools websockets``).

The load: ``--connections`` clients, each on one keep-alive connection sending
``GET /health`` (it answers the version that served it) back to back, reconnecting 50 ms
after a failure; and ``--websockets`` WebSockets on ``/ws``, each sending a message every
50 ms and waiting for its echo (one that is closed or fails is dropped, not reopened).
After a steady phase the upgrade is triggered; its window runs until it returned and every
client was answered by 2.0.0, then a tail follows. Figures over the window (failures and
drops over the whole run): failed requests, WebSockets dropped, and the longest time during
which no client got a successful response.

Run from the repository root::

    .venv/bin/python bench/asgi_upgrade.py --quick

One JSON object per line on stdout (the format of ``bench/runtime.py``; a ratio against a
zero baseline divides by 1 instead), a human summary on stderr. Every server is stopped by
its pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.asgi import HOST, _free_port, _wait_listening  # noqa: E402
from bench.runtime import Result, emit  # noqa: E402
from tests._support.nodes import NodeProcess  # noqa: E402
from tests.examples.notes import EchoSocket, LoadClient, build_example, call_json  # noqa: E402

if TYPE_CHECKING:
    import http.client
    from collections.abc import Awaitable, Callable

RETRY_DELAY: Final = 0.05  # a client's pause before it reconnects after a failure
ECHO_EVERY: Final = 0.05
WAIT: Final = 60.0  # the longest any one step may take before the run is abandoned


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one run."""

    connections: int
    websockets: int
    steady: float  # seconds of load before the upgrade, and after its window


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one server's upgrade under load came to."""

    server: str
    requests: int
    failed: int
    dropped: int
    longest_gap_ms: float
    window_ms: float
    notes: tuple[str, ...]


class Echoes(threading.Thread):
    """One WebSocket echoing a message every ``ECHO_EVERY`` seconds until ``stopping``."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.echoed = 0
        self.dropped: str | None = None
        self.opened = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            socket = EchoSocket(self.port)
        except (OSError, ConnectionError) as exc:
            self.dropped = f"not opened: {exc!r}"
            self.opened.set()
            return
        self.opened.set()
        try:
            while not self.stopping.is_set():
                answer = socket.echo(f"m{self.echoed}")
                if not answer.endswith(f" m{self.echoed}"):
                    self.dropped = f"wrong echo {answer!r}"
                    return
                self.echoed += 1
                self.stopping.wait(ECHO_EVERY)
        except (OSError, ConnectionError) as exc:
            code = socket.close_code
            self.dropped = f"closed {code}" if code is not None else type(exc).__name__
        finally:
            socket.close()


def _health(conn: http.client.HTTPConnection) -> str:
    status, body = call_json(conn, "GET", "/health")
    if status != 200:
        raise RuntimeError(f"status {status}: {body}")
    return str(body["vsn"])


def _longest_gap(clients: list[LoadClient], began: float, ended: float) -> float:
    """The longest time in ``[began, ended]`` with no successful answer to any client (s)."""
    times = sorted(t for c in clients for t in c.successes if began <= t <= ended)
    edges = [began, *times, ended]
    return max(b - a for a, b in itertools.pairwise(edges))


async def _waited(done: Callable[[], bool], what: str) -> None:
    """Poll until ``done()`` (the threads update what it reads); give up after ``WAIT``."""
    deadline = time.perf_counter() + WAIT
    while not done():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        await anyio.sleep(0.01)  # polling the clients' counts, which threads update


async def _under_load(
    server: str, port: int, config: Config, upgrade: Callable[[], Awaitable[None]]
) -> Outcome:
    """Load ``port``, run ``upgrade`` in the middle, measure its window."""
    clients = [
        LoadClient(port, _health, retry_delay=RETRY_DELAY) for _ in range(config.connections)
    ]
    sockets = [Echoes(port) for _ in range(config.websockets)]
    for thread in [*clients, *sockets]:
        thread.start()
    try:
        await _waited(
            lambda: all(c.ok for c in clients) and all(s.opened.is_set() for s in sockets),
            "every client's first answer",
        )
        await anyio.sleep(config.steady)  # the steady phase: load for a while, on 1.0.0
        began = time.perf_counter()
        await upgrade()
        await _waited(lambda: all(c.by_vsn["2.0.0"] for c in clients), "answers from 2.0.0")
        ended = time.perf_counter()
        await anyio.sleep(config.steady)  # the tail: 2.0.0 under the same load
    finally:
        for client in clients:
            client.stopping.set()
        for socket in sockets:
            socket.stopping.set()
        for thread in [*clients, *sockets]:
            await anyio.to_thread.run_sync(thread.join, 20.0)
    failures = [why.split("(")[0] for c in clients for _, why in c.failures]
    drops = [s.dropped for s in sockets if s.dropped is not None]
    notes = tuple(
        f"{what}: {why} x{count}"
        for what, whys in (("requests", failures), ("WebSockets", drops))
        for why, count in sorted(collections.Counter(whys).items())
    )
    return Outcome(
        server,
        sum(c.ok for c in clients),
        len(failures),
        len(drops),
        _longest_gap(clients, began, ended) * 1000,
        (ended - began) * 1000,
        notes,
    )


async def _node(config: Config, scratch: Path, packages: dict[str, Path]) -> Outcome:
    root = scratch / "node"
    root.mkdir()
    port = _free_port()
    (root / "sys.config").write_text(f"[notes]\nport = {port}\n")
    node = NodeProcess(root, ["run", "--release", str(packages["1.0.0"])], port, new_session=True)
    node.start()
    try:
        await anyio.to_thread.run_sync(node.wait_for, "release notes 1.0.0 booted")

        async def upgrade() -> None:
            done = await anyio.to_thread.run_sync(
                lambda: node.control("upgrade", package=str(packages["2.0.0"]))
            )
            if done.get("vsn") != "2.0.0":
                raise RuntimeError(f"the upgrade answered {done!r}")

        return await _under_load("node (live upgrade)", port, config, upgrade)
    finally:
        node.terminate()  # by its pid


def _uvicorn_command(source: Path, port: int) -> list[str]:
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    ws = "websockets" if importlib.util.find_spec("websockets") else "wsproto"
    return [
        sys.executable, "-m", "uvicorn", "notes.main:app", "--app-dir", str(source),
        "--reload", "--reload-dir", str(source), "--host", HOST, "--port", str(port),
        "--http", http, "--ws", ws, "--no-access-log", "--log-level", "warning",
        "--loop", "asyncio",
    ]  # fmt: skip


async def _uvicorn(config: Config, scratch: Path, tree: Path) -> Outcome:
    source = scratch / "uvicorn-src"
    shutil.copytree(tree / "apps" / "notes-1.0.0", source)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = await anyio.open_process(
        _uvicorn_command(source, port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # its "Reloading" lines, unread: a pipe could fill
        start_new_session=True,
    )
    try:
        await _wait_listening(port, process)

        async def reload() -> None:
            new = (tree / "apps" / "notes-2.0.0" / "notes" / "main.py").read_bytes()
            (source / "notes" / "main.py").write_bytes(new)

        return await _under_load("uvicorn --reload", port, config, reload)
    finally:
        _stop(process.pid)  # the reloader stops its worker on SIGTERM
        with anyio.move_on_after(15):
            await process.wait()
        if process.returncode is None:  # the reloader is stuck: its group, which we started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else value


async def bench(config: Config) -> tuple[list[Result], str]:
    missing = [m for m in ("uvicorn",) if importlib.util.find_spec(m) is None]
    with tempfile.TemporaryDirectory(prefix="bench-asgi-upgrade-") as folder:
        scratch = Path(folder)
        tree = scratch / "example"
        packages = build_example(tree, scratch / "packages")
        outcomes = [await _node(config, scratch, packages)]
        if not missing:
            outcomes.append(await _uvicorn(config, scratch, tree))
    lines = [
        f"GET /health on {config.connections} keep-alive connections and {config.websockets} "
        f"WebSockets echoing every {ECHO_EVERY * 1000:g} ms; upgrade 1.0.0 -> 2.0.0 of the "
        "FastAPI example"
    ]
    lines.extend(
        f"  {o.server:20} failed {o.failed:5}  WebSockets dropped {o.dropped:3}/"
        f"{config.websockets}  longest gap {o.longest_gap_ms:8.1f} ms  window "
        f"{o.window_ms:7.0f} ms  ({o.requests:,} good answers)"
        + (f"\n    {'; '.join(o.notes)}" if o.notes else "")
        for o in outcomes
    )
    node = outcomes[0]
    figures: list[tuple[str, str, Callable[[Outcome], float]]] = [
        ("asgi_upgrade_failed_requests", "requests", lambda o: o.failed),
        ("asgi_upgrade_websockets_dropped", "websockets", lambda o: o.dropped),
        ("asgi_upgrade_longest_gap", "ms", lambda o: o.longest_gap_ms),
    ]
    if missing:
        lines.append(f"  uvicorn --reload baseline skipped: pip install {' '.join(missing)}")
        return [Result(name, get(node), unit, "none", 0.0, 0.0) for name, unit, get in figures], (
            "\n".join(lines)
        )
    base = outcomes[1]
    results = [
        Result(name, get(node), unit, "uvicorn-reload", get(base), _ratio(get(node), get(base)))
        for name, unit, get in figures
    ]
    return results, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="8 + 8 clients, 1 s phases")
    parser.add_argument("--connections", type=int, help="keep-alive HTTP clients (default 16)")
    parser.add_argument("--websockets", type=int, help="open WebSockets (default 16)")
    options = parser.parse_args(argv)
    size = 8 if options.quick else 16
    config = Config(
        connections=options.connections or size,
        websockets=options.websockets or size,
        steady=1.0 if options.quick else 3.0,
    )
    results, text = anyio.run(bench, config, backend="asyncio")
    emit(results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
