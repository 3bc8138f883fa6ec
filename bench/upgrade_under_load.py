"""Live upgrades and rollbacks under load, against a restart-based deploy, on real nodes.

What is measured (both scenarios in one run, each on a fresh temporary root holding a copy
of the repository's ``releases/``, ``appspecs/``, ``apps/`` and ``sys.config`` on a free
port; each node is a real OS process, ``python -m server run --root R``):

- **live**: a node boots demo 1.0.0. ``--connections`` clients (this script's own, raw
  HTTP/1.1 keep-alive over anyio TCP streams) each send ``POST /incr/<its own key>`` back to
  back, so every answer's value must be exactly the previous one plus 1. Phases: a steady
  phase of ``--duration`` seconds; ``upgrade`` to 1.1.0 over the control socket (unpack +
  install + permanent in one command, as ``server upgrade`` sends it); a pause of half the
  duration; ``upgrade`` to 2.0.0; a pause; ``rollback`` (2.0.0 -> 1.1.0, which becomes
  permanent); a pause; ``rollback`` (1.1.0 -> 1.0.0); a steady tail of ``--duration``.
  An upgrade *window* runs from sending the control request to its reply; a request falls
  in it when it was in flight at any moment of the window.
- **restart**: the same load against a fresh node on 1.0.0; after half the duration the node
  gets SIGTERM and, once it has exited, a new node process starts on the same port from a
  root prepared to boot 1.1.0 (its ``sys.config`` names ``demo-1.1.0``); clients reconnect
  on errors, 50 ms apart; then a tail of half the duration.

A failed request is a connection that cannot be opened, one that breaks or times out during
a request, a non-2xx status, or (live only) a wrong body: not JSON, another key, a value
that is not the previous + 1, a missing or unknown vsn. In the restart scenario a reset
counter is counted apart (``value resets``), since it is state lost rather than a request
failed. At the end ``GET /count/<key>`` must equal the number of increments the connection
saw acknowledged (consistency; in the restart scenario: did the state survive).

Benches (one JSON object per line on stdout, the format of ``bench/runtime.py``; ratios
against a zero baseline divide by 1 instead):

- ``requests_failed``: failed requests over the live run, against the restart deploy's.
- ``state_consistent``: 1 if every count is exact after the live run, against whether the
  restart deploy kept its state.
- ``p99_upgrade_over_steady``: p99 latency (ms) of the requests inside the four windows,
  against the p99 of the steady phase; the ratio is the headline (target <= 3).
- ``max_latency``: the longest request (ms) of the live run, against the steady phase's.
- ``longest_gap``: the longest time (ms) with no successful response at all in the live
  run, against the restart deploy's.
- ``deploy_time``: ms from sending ``upgrade`` 1.1.0 to its reply, against SIGTERM to the
  first answer from the new process (vsn 1.1.0).
- ``restart_deploy_failed_requests``, ``restart_deploy_longest_gap``,
  ``restart_deploy_state_survived``: the restart deploy's figures, against the live run's.
- ``throughput``: successful requests/s in the live steady phase, against the restart
  scenario's steady phase (the same load on the same release; a sanity check).

Run from the repository root::

    .venv/bin/python bench/upgrade_under_load.py --quick    # 8 connections, under a minute
    .venv/bin/python bench/upgrade_under_load.py            # 32 connections, 20 s phases

This script's own cyclic GC is off while it measures (a full collection would stall every
client at once and be charged to the node); the nodes' GC is left as it is. A human summary
follows on stderr. Every node is stopped and every temporary root removed
at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import itertools
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, NoReturn

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.runtime is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.runtime import Result  # noqa: E402
from server.control.client import request  # noqa: E402
from server.release.package import build_package  # noqa: E402
from server.release.source_tree import SourceTree  # noqa: E402
from tests._support.nodes import NodeProcess, copy_demo_tree, free_port, set_port  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from anyio.abc import SocketStream

    from server.control.protocol import ProgressInfo

HOST: Final = "127.0.0.1"
KNOWN_VSNS: Final = frozenset({"1.0.0", "1.1.0", "2.0.0"})
BOOT_TIMEOUT: Final = 60.0
CONTROL_TIMEOUT: Final = 120.0
REQUEST_TIMEOUT: Final = 10.0
RETRY_DELAY: Final = 0.05  # a client's pause before it reconnects after an error
POLL: Final = 0.005
MAX_HEAD: Final = 64 * 1024

# outcome of one request
OK: Final = 0
CONNECT_FAILED: Final = 1
BROKEN: Final = 2  # reset, EOF, timeout or garbage while a request was under way
BAD_STATUS: Final = 3
BAD_BODY: Final = 4
OUTCOMES: Final = ("ok", "connect failed", "connection broken", "non-2xx", "wrong body")

TARGET_P99_RATIO: Final = 3.0
TARGET_MAX_MS: Final = 250.0


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one run."""

    quick: bool
    connections: int
    duration: float
    warmup: float
    gc_trace: bool


# -- nodes and roots ---------------------------------------------------------------------------


#: Put on the nodes' PYTHONPATH (unless --no-gc-trace): a line per cyclic GC pause, so that a
#: slow request can be told apart from a collection in the node.
GC_TRACE: Final = '''\
"""Written by bench/upgrade_under_load.py: report the node's cyclic GC pauses."""
import gc
import sys
import time

_began = [0.0]


def _watch(phase, info):
    if phase == "start":
        _began[0] = time.perf_counter()
        return
    took = time.perf_counter() - _began[0]
    if took >= 0.002 or info["generation"] == 2:
        sys.stderr.write(
            f"{MARK} gen={info['generation']} start={_began[0]:.6f} seconds={took:.6f}\\n"
        )


gc.callbacks.append(_watch)
'''
GC_MARK: Final = "bench-gc-pause"


class Cleanup:
    """Every node started and every directory made, undone at the end whatever happens."""

    def __init__(self) -> None:
        self.nodes: list[BenchNode] = []
        self.dirs: list[Path] = []
        self.gc_trace: Path | None = None

    def trace_gc(self) -> None:
        """Nodes started from now on report their GC pauses."""
        folder = self.tempdir("upgrade-gc-trace-")
        (folder / "sitecustomize.py").write_text(GC_TRACE.replace("{MARK}", GC_MARK))
        self.gc_trace = folder

    def tempdir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.dirs.append(path)
        return path

    def run(self) -> None:
        for node in self.nodes:
            node.terminate()
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


class BenchNode(NodeProcess):
    """The shared node process, in its own session, with the benchmark's waits and GC report."""

    @classmethod
    def launch(cls, root: Path, port: int, cleanup: Cleanup) -> BenchNode:
        env = {}
        if cleanup.gc_trace is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(cleanup.gc_trace), os.environ.get("PYTHONPATH", "")) if p
            )
        # its own session: a Ctrl-C reaches this script only, which stops the node
        node = cls(root, ["run"], port, env=env, new_session=True)
        node.started = perf_counter()
        node.start()
        cleanup.nodes.append(node)
        return node

    started: float = 0.0

    @property
    def socket(self) -> Path:
        return self.root / "run" / "control.sock"

    async def wait_line(self, text: str, timeout: float = BOOT_TIMEOUT) -> float:
        """Poll until a line with ``text`` was printed; fail if the node exits first."""
        with anyio.fail_after(timeout):
            while (at := self.line_time(text)) is None:
                if self.process.poll() is not None:
                    raise RuntimeError(f"node exited ({self.process.returncode}):\n{self.tail()}")
                await anyio.sleep(POLL)
        return at

    async def wait_exit(self, timeout: float) -> int:
        wait = functools.partial(self.process.wait, timeout)
        try:
            return await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"node {self.root} still running {timeout} s on") from None

    def gc_pauses(self) -> list[tuple[float, float, int]]:
        """``(start, seconds, generation)`` of each GC pause the node reported."""
        pauses = []
        for line in list(self.lines):
            if line.startswith(GC_MARK):
                fields = dict(part.split("=", 1) for part in line.split()[1:])
                pauses.append(
                    (float(fields["start"]), float(fields["seconds"]), int(fields["gen"]))
                )
        return pauses


def make_root(cleanup: Cleanup, prefix: str, port: int, release: str | None = None) -> Path:
    """A private copy of the release sources, serving on ``port``."""
    root = copy_demo_tree(cleanup.tempdir(prefix))
    set_port(root, port)
    if release is not None:
        config = root / "sys.config"
        text = config.read_text()
        config.write_text(text.replace('release = "demo-1.0.0"', f'release = "{release}"'))
        if f'release = "{release}"' not in config.read_text():
            raise RuntimeError(f"could not make sys.config boot {release}")
    return root


class BadResponse(Exception):
    """The bytes on the wire are not an HTTP/1.1 response this client can read."""


@dataclass(slots=True)
class Client:
    """One keep-alive connection incrementing its own key; one sample per request."""

    key: str
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # sent, s, outcome
    last_value: int = 0
    acknowledged: int = 0  # 2xx answers carrying a value: increments the node says it made
    vsns: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)  # vsn -> its first answer
    errors: dict[str, int] = field(default_factory=dict)

    def note(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Load:
    """``n`` clients against ``port``, until ``stop()``: each finishes its request first."""

    def __init__(self, port: int, n: int, prefix: str) -> None:
        self.port = port
        self.clients = [Client(f"{prefix}{i}") for i in range(n)]
        self.running = True
        self.stalls: list[tuple[float, float]] = []  # this process's own loop: start, s
        self._served = 0
        self._all_served = anyio.Event()

    def stop(self) -> None:
        self.running = False

    def successes(self) -> int:
        return sum(1 for c in self.clients for s in c.samples if s[2] == OK)

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_loop)
            for client in self.clients:
                group.start_soon(self._drive, client)

    async def _watch_loop(self) -> None:
        """Note when this process's event loop was late by over 5 ms (a client-side stall)."""
        while self.running:
            began = perf_counter()
            await anyio.sleep(0.001)
            if (late := perf_counter() - began - 0.001) > 0.005:
                self.stalls.append((began, late))

    async def wait_all_served(self, timeout: float) -> None:
        with anyio.fail_after(timeout):
            await self._all_served.wait()

    async def _drive(self, client: Client) -> None:
        message = (
            f"POST /incr/{client.key} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        stream: SocketStream | None = None
        buffer = bytearray()
        try:
            while self.running:
                if stream is None:
                    began = perf_counter()
                    try:
                        with anyio.fail_after(REQUEST_TIMEOUT):
                            stream = await anyio.connect_tcp(HOST, self.port)
                    except (OSError, TimeoutError) as exc:
                        client.samples.append((began, perf_counter() - began, CONNECT_FAILED))
                        client.note(f"connect: {type(exc).__name__}")
                        await anyio.sleep(RETRY_DELAY)
                        continue
                    buffer.clear()
                sent = perf_counter()
                try:
                    with anyio.fail_after(REQUEST_TIMEOUT):
                        await stream.send(message)
                        status, close, body = await read_response(stream, buffer)
                except (
                    OSError,
                    TimeoutError,
                    BadResponse,
                    anyio.EndOfStream,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                ) as exc:
                    client.samples.append((sent, perf_counter() - sent, BROKEN))
                    client.note(f"broken: {type(exc).__name__}")
                    await stream.aclose()
                    stream = None
                    await anyio.sleep(RETRY_DELAY)
                    continue
                latency = perf_counter() - sent
                client.samples.append((sent, latency, self._judge(client, status, body)))
                if close:
                    await stream.aclose()
                    stream = None
        finally:
            if stream is not None:
                await stream.aclose()

    def _judge(self, client: Client, status: int, body: bytes) -> int:
        if not 200 <= status < 300:
            client.note(f"status {status}")
            return BAD_STATUS
        try:
            data: Any = json.loads(body)
        except ValueError:
            client.note("body not JSON")
            return BAD_BODY
        value = data.get("value") if isinstance(data, dict) else None
        if not isinstance(value, int):
            client.note("no value")
            return BAD_BODY
        client.acknowledged += 1
        if client.acknowledged == 1:
            self._served += 1
            if self._served == len(self.clients):
                self._all_served.set()
        expected, client.last_value = client.last_value + 1, value
        vsn = data.get("vsn")
        if isinstance(vsn, str):
            if vsn not in client.vsns:
                client.first_seen[vsn] = perf_counter()
            client.vsns[vsn] = client.vsns.get(vsn, 0) + 1
        if value != expected:
            client.note("value not previous + 1")
            return BAD_BODY
        if data.get("key") != client.key:
            client.note("another key")
            return BAD_BODY
        if vsn not in KNOWN_VSNS:
            client.note("missing or unknown vsn")
            return BAD_BODY
        return OK


async def read_response(stream: SocketStream, buffer: bytearray) -> tuple[int, bool, bytes]:
    """Read one response: ``(status, connection closes after it, body)``.

    Raises:
        BadResponse: not an HTTP/1.x response with a Content-Length body.
        anyio.EndOfStream: the server closed the connection before a whole response.
    """
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > MAX_HEAD:
            raise BadResponse("response head too long")
        buffer += await stream.receive()
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    del buffer[: end + 4]
    version, _, rest = head[0].partition(" ")
    code = rest.partition(" ")[0]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise BadResponse(f"bad status line {head[0]!r}")
    length: int | None = None
    close = version == "HTTP/1.0"
    for line in head[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            if not value.isdigit():
                raise BadResponse(f"bad Content-Length {value!r}")
            length = int(value)
        elif name == "connection":
            close = "close" in value.lower()
        elif name == "transfer-encoding":
            raise BadResponse(f"unexpected Transfer-Encoding {value!r}")
    if length is None:
        raise BadResponse("no Content-Length")
    while len(buffer) < length:
        buffer += await stream.receive()
    body = bytes(buffer[:length])
    del buffer[:length]
    return int(code), close, body


async def http_get(port: int, path: str) -> tuple[int, Any]:
    """One GET on a fresh connection; the JSON body decoded."""
    with anyio.fail_after(REQUEST_TIMEOUT):
        async with await anyio.connect_tcp(HOST, port) as stream:
            await stream.send(
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            status, _, body = await read_response(stream, bytearray())
    return status, json.loads(body)


# -- phases and statistics ---------------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    """A stretch of the run: steady load, a pause, or a window around one deploy step."""

    label: str
    kind: str  # "warmup", "steady", "window", "pause", "tail"
    start: float
    end: float = math.nan
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Stats:
    """Latencies (ms) and counts of a set of samples."""

    requests: int
    failed: int
    ok_per_second: float
    p50: float
    p99: float
    max: float

    @staticmethod
    def of(samples: list[tuple[float, float, int]], seconds: float) -> Stats:
        ok = sorted(s[1] * 1000 for s in samples if s[2] == OK)
        return Stats(
            requests=len(samples),
            failed=sum(1 for s in samples if s[2] != OK),
            ok_per_second=len(ok) / seconds if seconds > 0 else 0.0,
            p50=percentile(ok, 0.50),
            p99=percentile(ok, 0.99),
            max=ok[-1] if ok else 0.0,
        )

    def row(self, label: str, seconds: float) -> str:
        return (
            f"{label:<26} {seconds:>7.2f} {self.requests:>8} {self.failed:>6} "
            f"{self.ok_per_second:>8.0f} {self.p50:>8.2f} {self.p99:>8.2f} {self.max:>8.2f}"
        )


STATS_HEADER: Final = (
    f"{'phase':<26} {'s':>7} {'requests':>8} {'failed':>6} {'ok/s':>8} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def all_samples(load: Load) -> Iterator[tuple[float, float, int]]:
    for client in load.clients:
        yield from client.samples


def sent_in(load: Load, phase: Phase) -> list[tuple[float, float, int]]:
    return [s for s in all_samples(load) if phase.start <= s[0] < phase.end]


def overlapping(load: Load, phase: Phase) -> list[tuple[float, float, int]]:
    """Requests in flight at some moment of the phase."""
    return [s for s in all_samples(load) if s[0] < phase.end and s[0] + s[1] > phase.start]


def longest_gap(load: Load, start: float, end: float) -> tuple[float, float]:
    """The longest stretch (ms) in [start, end] with no successful response, and its start."""
    done = sorted(s[0] + s[1] for s in all_samples(load) if s[2] == OK and start <= s[0] + s[1])
    marks = [start, *(t for t in done if t <= end), end]
    gap, at = max((b - a, a) for a, b in itertools.pairwise(marks))
    return gap * 1000, at


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else value


@dataclass(slots=True)
class Scenario:
    """What one scenario leaves for the report."""

    name: str
    load: Load
    phases: list[Phase]
    node_complaints: list[str]
    counts: dict[str, int]
    started: float
    ended: float
    deploy_ms: float = 0.0
    extra: list[str] = field(default_factory=list)
    node_gc: list[tuple[float, float, int]] = field(default_factory=list)  # start, s, gen

    def failed(self, outcomes: Iterable[int]) -> int:
        wanted = set(outcomes)
        return sum(1 for s in all_samples(self.load) if s[2] in wanted)

    def consistent(self) -> bool:
        return all(self.counts.get(c.key) == c.acknowledged for c in self.load.clients)

    def steady(self) -> Phase:
        return next(p for p in self.phases if p.kind == "steady")

    def windows(self) -> list[Phase]:
        return [p for p in self.phases if p.kind == "window"]


# -- the scenarios -----------------------------------------------------------------------------


async def _hold(phases: list[Phase], label: str, kind: str, seconds: float) -> Phase:
    phase = Phase(label, kind, perf_counter())
    phases.append(phase)
    await anyio.sleep(seconds)
    phase.end = perf_counter()
    return phase


async def _control_window(
    phases: list[Phase], node: BenchNode, label: str, command: str, args: dict[str, str]
) -> tuple[Phase, dict[str, Any]]:
    steps: list[tuple[float, str]] = []

    def on_progress(info: ProgressInfo) -> None:
        steps.append((perf_counter(), info.step))

    phase = Phase(label, "window", perf_counter())
    phases.append(phase)
    result = await request(
        node.socket, command, args, on_progress=on_progress, timeout=CONTROL_TIMEOUT
    )
    phase.end = perf_counter()
    if not isinstance(result, dict):
        raise RuntimeError(f"{command}: unexpected reply {result!r}")
    report = result.get("report")
    if isinstance(report, dict):
        seconds = report.get("seconds")
        processes = report.get("processes")
        phase.notes.append(
            f"install {report.get('from_vsn')} -> {report.get('to_vsn')} on the node: "
            f"{seconds * 1000 if isinstance(seconds, float) else math.nan:.1f} ms, "
            f"{len(processes) if isinstance(processes, list) else '?'} processes migrated"
        )
    marks: list[str] = []
    for at, step in steps:  # consecutive repeats of one step are shown once, at the first
        if not marks or not marks[-1].startswith(step + " "):
            marks.append(f"{step} +{(at - phase.start) * 1000:.1f}")
    marks.append(f"reply +{(phase.end - phase.start) * 1000:.1f}")
    phase.notes.append("progress seen by the client (ms): " + ", ".join(marks))
    return phase, result


async def _counts(port: int, load: Load) -> dict[str, int]:
    counts: dict[str, int] = {}
    for client in load.clients:
        status, body = await http_get(port, f"/count/{client.key}")
        if status == 200 and isinstance(body.get("value"), int):
            counts[client.key] = body["value"]
    return counts


async def live_scenario(config: Config, cleanup: Cleanup) -> Scenario:
    port = free_port()
    root = make_root(cleanup, "upgrade-live-", port)
    packages = root / "build"
    for vsn in ("1.1.0", "2.0.0"):
        build_package(SourceTree(root), "demo", vsn, packages)
    node = BenchNode.launch(root, port, cleanup)
    await node.wait_line("release demo 1.0.0 booted")
    load = Load(port, config.connections, "live-")
    phases: list[Phase] = []
    pause = config.duration / 2
    async with anyio.create_task_group() as group:
        group.start_soon(load.run)
        try:
            warm = Phase("warm-up", "warmup", perf_counter())
            phases.append(warm)
            await load.wait_all_served(BOOT_TIMEOUT)
            await anyio.sleep(config.warmup)
            warm.end = perf_counter()
            started = warm.end
            await _hold(phases, "steady (1.0.0)", "steady", config.duration)
            first, _ = await _control_window(
                phases,
                node,
                "upgrade 1.0.0 -> 1.1.0",
                "upgrade",
                {"package": str(packages / "demo-1.1.0.tar.gz")},
            )
            await _hold(phases, "pause (1.1.0)", "pause", pause)
            await _control_window(
                phases,
                node,
                "upgrade 1.1.0 -> 2.0.0",
                "upgrade",
                {"package": str(packages / "demo-2.0.0.tar.gz")},
            )
            await _hold(phases, "pause (2.0.0)", "pause", pause)
            _, back = await _control_window(phases, node, "rollback 2.0.0 -> 1.1.0", "rollback", {})
            if back.get("vsn") != "1.1.0":
                raise RuntimeError(f"the first rollback went to {back.get('vsn')}, not 1.1.0")
            await _hold(phases, "pause (1.1.0 again)", "pause", pause)
            _, back = await _control_window(phases, node, "rollback 1.1.0 -> 1.0.0", "rollback", {})
            if back.get("vsn") != "1.0.0":
                raise RuntimeError(f"the second rollback went to {back.get('vsn')}, not 1.0.0")
            await _hold(phases, "tail (1.0.0)", "tail", config.duration)
        finally:
            load.stop()
    ended = max(s[0] + s[1] for s in all_samples(load))
    counts = await _counts(port, load)
    health = await http_get(port, "/health")
    releases = await request(node.socket, "releases", {}, timeout=CONTROL_TIMEOUT)
    table = (
        {row["vsn"]: row["status"] for row in releases if isinstance(row, dict)}
        if isinstance(releases, list)
        else {}
    )
    await request(node.socket, "stop", {}, timeout=CONTROL_TIMEOUT)
    await node.wait_exit(30)
    scenario = Scenario("live", load, phases, node.complaints(), counts, started, ended)
    scenario.deploy_ms = (first.end - first.start) * 1000
    scenario.node_gc = node.gc_pauses()
    scenario.extra.append(f"after the run: /health {health[1]}, releases {table}")
    return scenario


async def restart_scenario(config: Config, cleanup: Cleanup) -> Scenario:
    port = free_port()
    old_root = make_root(cleanup, "upgrade-restart-a-", port)
    new_root = make_root(cleanup, "upgrade-restart-b-", port, release="demo-1.1.0")
    old = BenchNode.launch(old_root, port, cleanup)
    await old.wait_line("release demo 1.0.0 booted")
    load = Load(port, config.connections, "restart-")
    phases: list[Phase] = []
    half = config.duration / 2
    async with anyio.create_task_group() as group:
        group.start_soon(load.run)
        try:
            warm = Phase("warm-up", "warmup", perf_counter())
            phases.append(warm)
            await load.wait_all_served(BOOT_TIMEOUT)
            await anyio.sleep(config.warmup)
            warm.end = perf_counter()
            started = warm.end
            await _hold(phases, "steady (1.0.0)", "steady", half)
            window = Phase("SIGTERM, new process 1.1.0", "window", perf_counter())
            phases.append(window)
            old.send_signal(signal.SIGTERM)
            code = await old.wait_exit(30)
            exited = perf_counter()
            new = BenchNode.launch(new_root, port, cleanup)
            booted = await new.wait_line("release demo 1.1.0 booted")
            window.end = perf_counter()
            window.notes.append(
                f"old node exited (code {code}) {(exited - window.start) * 1000:.0f} ms after "
                f"SIGTERM; new process printed 'booted' {(booted - new.started) * 1000:.0f} ms "
                f"after its start"
            )
            await _hold(phases, "tail (1.1.0)", "tail", half)
        finally:
            load.stop()
    ended = max(s[0] + s[1] for s in all_samples(load))
    first_ok = min((c.first_seen.get("1.1.0", math.inf) for c in load.clients), default=math.inf)
    counts = await _counts(port, load)
    await request(new.socket, "stop", {}, timeout=CONTROL_TIMEOUT)
    await new.wait_exit(30)
    scenario = Scenario(
        "restart", load, phases, old.complaints() + new.complaints(), counts, started, ended
    )
    scenario.deploy_ms = (first_ok - window.start) * 1000
    scenario.node_gc = old.gc_pauses() + new.gc_pauses()
    return scenario


# -- the report --------------------------------------------------------------------------------

LIVE_FAILURES: Final = (CONNECT_FAILED, BROKEN, BAD_STATUS, BAD_BODY)
RESTART_FAILURES: Final = (CONNECT_FAILED, BROKEN, BAD_STATUS)


@dataclass(frozen=True, slots=True)
class Figures:
    """The headline numbers of both scenarios."""

    live_failed: int
    live_consistent: int
    steady_p99: float
    window_p99: float
    steady_max: float
    live_max: float
    live_gap: float
    live_gap_at: float
    restart_failed: int
    restart_gap: float
    restart_gap_at: float
    restart_survived: int
    live_rate: float
    restart_rate: float


def figures(live: Scenario, restart: Scenario) -> Figures:
    steady = Stats.of(sent_in(live.load, live.steady()), live.steady().end - live.steady().start)
    in_windows = [s for w in live.windows() for s in overlapping(live.load, w)]
    window_seconds = sum(w.end - w.start for w in live.windows())
    measured = [s for s in all_samples(live.load) if s[0] >= live.started]
    r_steady = restart.steady()
    live_gap, live_gap_at = longest_gap(live.load, live.started, live.ended)
    restart_gap, restart_gap_at = longest_gap(restart.load, restart.started, restart.ended)
    return Figures(
        live_failed=live.failed(LIVE_FAILURES),
        live_consistent=int(live.consistent()),
        steady_p99=steady.p99,
        window_p99=Stats.of(in_windows, window_seconds).p99,
        steady_max=steady.max,
        live_max=max((s[1] * 1000 for s in measured), default=0.0),
        live_gap=live_gap,
        live_gap_at=live_gap_at,
        restart_failed=restart.failed(RESTART_FAILURES),
        restart_gap=restart_gap,
        restart_gap_at=restart_gap_at,
        restart_survived=int(restart.consistent()),
        live_rate=steady.ok_per_second,
        restart_rate=Stats.of(
            sent_in(restart.load, r_steady), r_steady.end - r_steady.start
        ).ok_per_second,
    )


def results(live: Scenario, restart: Scenario, f: Figures) -> list[Result]:
    restart_name = "restart deploy (SIGTERM, new process on 1.1.0, clients reconnect)"
    return [
        Result(
            "requests_failed",
            f.live_failed,
            "requests",
            f"{restart_name}: failed requests",
            f.restart_failed,
            ratio(f.live_failed, f.restart_failed),
        ),
        Result(
            "state_consistent",
            f.live_consistent,
            "bool",
            f"{restart_name}: state survived",
            f.restart_survived,
            ratio(f.live_consistent, f.restart_survived),
        ),
        Result(
            "p99_upgrade_over_steady",
            f.window_p99,
            "ms",
            "p99 latency of the steady phase before the first upgrade, ms",
            f.steady_p99,
            ratio(f.window_p99, f.steady_p99),
        ),
        Result(
            "max_latency",
            f.live_max,
            "ms",
            "max latency of the steady phase, ms",
            f.steady_max,
            ratio(f.live_max, f.steady_max),
        ),
        Result(
            "longest_gap",
            f.live_gap,
            "ms",
            f"{restart_name}: longest gap with no successful response, ms",
            f.restart_gap,
            ratio(f.live_gap, f.restart_gap),
        ),
        Result(
            "deploy_time",
            live.deploy_ms,
            "ms",
            f"{restart_name}: SIGTERM to the first answer from 1.1.0, ms",
            restart.deploy_ms,
            ratio(live.deploy_ms, restart.deploy_ms),
        ),
        Result(
            "restart_deploy_failed_requests",
            f.restart_failed,
            "requests",
            "live upgrades and rollbacks: failed requests",
            f.live_failed,
            ratio(f.restart_failed, f.live_failed),
        ),
        Result(
            "restart_deploy_longest_gap",
            f.restart_gap,
            "ms",
            "live upgrades and rollbacks: longest gap with no successful response, ms",
            f.live_gap,
            ratio(f.restart_gap, f.live_gap),
        ),
        Result(
            "restart_deploy_state_survived",
            f.restart_survived,
            "bool",
            "live upgrades and rollbacks: every count exact",
            f.live_consistent,
            ratio(f.restart_survived, f.live_consistent),
        ),
        Result(
            "throughput",
            f.live_rate,
            "requests/s",
            "restart scenario's steady phase (same load, same release), requests/s",
            f.restart_rate,
            ratio(f.live_rate, f.restart_rate),
        ),
    ]


def _scenario_lines(s: Scenario) -> list[str]:
    lines = [STATS_HEADER]
    for phase in s.phases:
        seconds = phase.end - phase.start
        picked = overlapping(s.load, phase) if phase.kind == "window" else sent_in(s.load, phase)
        lines.append(Stats.of(picked, seconds).row(phase.label, seconds))
    measured = [x for x in all_samples(s.load) if x[0] >= s.started]
    lines.append(Stats.of(measured, s.ended - s.started).row("whole run", s.ended - s.started))
    for phase in s.phases:
        lines.extend(f"  {phase.label}: {note}" for note in phase.notes)
        if phase.kind == "window" and (picked := overlapping(s.load, phase)):
            worst = max(picked, key=lambda x: x[1])
            gap, at = longest_gap(s.load, phase.start, phase.end)
            lines.append(
                f"  {phase.label}: slowest request sent at {(worst[0] - phase.start) * 1000:+.1f}"
                f" ms, took {worst[1] * 1000:.1f} ms; longest stretch with no answer to any "
                f"client {gap:.1f} ms from {(at - phase.start) * 1000:+.1f} ms"
            )
    total = sum(len(c.samples) for c in s.load.clients)
    by_outcome = [0] * len(OUTCOMES)
    for x in all_samples(s.load):
        by_outcome[x[2]] += 1
    lines.append(
        f"  requests sent {total} (warm-up included): "
        + ", ".join(f"{name} {n}" for name, n in zip(OUTCOMES, by_outcome, strict=True))
    )
    errors: dict[str, int] = {}
    vsns: dict[str, int] = {}
    for c in s.load.clients:
        for what, n in c.errors.items():
            errors[what] = errors.get(what, 0) + n
        for vsn, n in c.vsns.items():
            vsns[vsn] = vsns.get(vsn, 0) + n
    if errors:
        lines.append("  failures: " + ", ".join(f"{w} x{n}" for w, n in sorted(errors.items())))
    lines.append("  answers per vsn: " + ", ".join(f"{v} {n}" for v, n in sorted(vsns.items())))
    wrong = [
        f"{c.key}: count {s.counts.get(c.key)} vs {c.acknowledged} acknowledged"
        for c in s.load.clients
        if s.counts.get(c.key) != c.acknowledged
    ]
    acknowledged = sum(c.acknowledged for c in s.load.clients)
    counted = sum(s.counts.values())
    lines.append(
        f"  consistency: /count sums to {counted} for {acknowledged} acknowledged increments "
        f"over {len(s.load.clients)} keys: "
        + ("exact" if not wrong else f"{len(wrong)} keys differ, e.g. " + "; ".join(wrong[:3]))
    )
    slowest = sorted((x for x in measured if x[2] == OK), key=lambda x: -x[1])[:5]
    lines.append(
        "  slowest requests: "
        + ", ".join(
            f"{x[1] * 1000:.1f} ms ({_where(s, x[0], x[1])}{_gc_during(s, x[0], x[0] + x[1])})"
            for x in slowest
        )
    )
    if s.node_gc:
        during = [g for g in s.node_gc if g[0] + g[1] >= s.started and g[0] <= s.ended]
        full = [g for g in during if g[2] == 2]
        longest = max(during, key=lambda g: g[1], default=None)
        lines.append(
            f"  node GC pauses (>= 2 ms, or full) while measuring: {len(during)}, "
            f"{len(full)} full (gen 2)"
            + "".join(f", {g[1] * 1000:.1f} ms" for g in sorted(full, key=lambda g: g[0]))
            + (
                f"; longest {longest[1] * 1000:.1f} ms "
                f"(gen {longest[2]}, {_where(s, longest[0], longest[1])})"
                if longest
                else ""
            )
        )
    stalls = [x for x in s.load.stalls if x[0] >= s.started]
    lines.append(
        f"  this script's loop late by > 5 ms: {len(stalls)} times"
        + (f", at worst {max(x[1] for x in stalls) * 1000:.1f} ms" if stalls else "")
    )
    lines.extend(f"  {line}" for line in s.extra)
    if s.node_complaints:
        lines.append(f"  node log: {len(s.node_complaints)} warning/error lines, first ones:")
        lines.extend(f"    {line[:200]}" for line in s.node_complaints[:8])
    else:
        lines.append("  node log: no warning or error lines")
    return lines


def _gc_during(s: Scenario, start: float, end: float) -> str:
    pauses = [g for g in s.node_gc if g[0] < end and g[0] + g[1] > start]
    stalls = [x for x in s.load.stalls if x[0] < end and x[0] + x[1] > start]
    said = "".join(f", node GC gen {g[2]} {g[1] * 1000:.0f} ms" for g in pauses)
    return said + "".join(f", client loop late {x[1] * 1000:.0f} ms" for x in stalls)


def _where(s: Scenario, sent: float, latency: float) -> str:
    for phase in s.phases:
        if phase.kind == "window" and sent < phase.end and sent + latency > phase.start:
            return f"in {phase.label}"
    for phase in s.phases:
        if phase.start <= sent < phase.end:
            return f"{phase.label} +{sent - phase.start:.2f} s"
    return f"t+{sent - s.started:.2f} s"


def summary(config: Config, live: Scenario, restart: Scenario, f: Figures, wall: float) -> str:
    checks = [
        ("0 failed requests (upgrades and rollbacks)", f.live_failed == 0, f"{f.live_failed}"),
        (
            f"p99 in upgrade windows <= {TARGET_P99_RATIO:g}x steady",
            f.window_p99 <= TARGET_P99_RATIO * f.steady_p99,
            f"{f.window_p99:.2f} ms / {f.steady_p99:.2f} ms = "
            f"{ratio(f.window_p99, f.steady_p99):.2f}x",
        ),
        (
            f"max latency < {TARGET_MAX_MS:g} ms",
            f.live_max < TARGET_MAX_MS,
            f"{f.live_max:.1f} ms",
        ),
        ("state exactly consistent", f.live_consistent == 1, f"{f.live_consistent}"),
    ]
    lines = [
        "",
        "=" * 100,
        f"upgrade under load ({'quick' if config.quick else 'full'}): {config.connections} "
        f"keep-alive connections, {config.duration:g} s steady phases, Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs",
        "",
        "live: upgrade 1.1.0, upgrade 2.0.0, rollback, rollback (windows: control request "
        "sent -> reply; a request counts in a window if in flight during it)",
        *_scenario_lines(live),
        "",
        "restart deploy: SIGTERM, wait for exit, new process booting 1.1.0 on the same port",
        *_scenario_lines(restart),
        f"  failed requests here exclude value resets (state lost): "
        f"{restart.failed([BAD_BODY])} answers restarted their count",
        "",
        "targets:",
        *(f"  {name:<46} {shown:<34} {'ok' if good else 'MISSED'}" for name, good, shown in checks),
        "",
        f"headline: failed requests live {f.live_failed} vs restart {f.restart_failed}; "
        f"longest gap live {f.live_gap:.1f} ms vs restart {f.restart_gap:.1f} ms "
        f"({ratio(f.restart_gap, f.live_gap):.1f}x); state kept live {f.live_consistent} vs "
        f"restart {f.restart_survived}",
        f"wall time {wall:.1f} s",
    ]
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def no_client_gc() -> Iterator[None]:
    """No cyclic GC in this process while it measures.

    A full collection here stalls every client at once for ~20 ms once their samples pile
    up, which would be charged to the node; the load makes little cyclic garbage.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def bench(config: Config, cleanup: Cleanup) -> tuple[Scenario, Scenario]:
    if config.gc_trace:
        cleanup.trace_gc()
    with no_client_gc():
        live = await live_scenario(config, cleanup)
    with no_client_gc():
        restart = await restart_scenario(config, cleanup)
    return live, restart


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="8 connections, 7 s phases")
    parser.add_argument("--connections", type=int, help="keep-alive clients (default 32)")
    parser.add_argument("--duration", type=float, help="seconds per steady phase (default 20)")
    parser.add_argument(
        "--no-gc-trace",
        action="store_true",
        help="do not have the nodes report their GC pauses (a sitecustomize on their path)",
    )
    options = parser.parse_args(argv)
    config = Config(
        quick=options.quick,
        connections=options.connections or (8 if options.quick else 32),
        duration=options.duration or (7.0 if options.quick else 20.0),
        warmup=0.5 if options.quick else 1.0,
        gc_trace=not options.no_gc_trace,
    )
    cleanup = Cleanup()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    try:
        live, restart = anyio.run(bench, config, cleanup, backend="asyncio")
    except KeyboardInterrupt:
        print("interrupted: stopping nodes, removing temporary roots", file=sys.stderr)
        return 130
    except Exception:
        for node in cleanup.nodes:
            print(f"--- node {node.root} output (last lines) ---\n{node.tail()}", file=sys.stderr)
        raise
    finally:
        cleanup.run()
        signal.signal(signal.SIGTERM, previous)
    f = figures(live, restart)
    for result in results(live, restart, f):
        print(result.json(), flush=True)
    print(summary(config, live, restart, f, time.monotonic() - began), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
