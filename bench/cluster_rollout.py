"""Nodes of one machine on one port: throughput of N nodes, and a rollout across them.

Every node is a real OS process started by ``server start --nodes N`` (each under its heart,
all listening on one HTTP port with ``SO_REUSEPORT``, connected as one cluster) on an EPMD of
the run's own; packages ``demo-1.0.0`` and ``demo-1.1.0`` are built from a private copy of
the repository's sources. Two modes:

- ``--nodes K`` (throughput): requests per second through the shared port with K nodes,
  against 1 node, measured in the same run, for ``GET /health`` (no state), ``POST
  /incr/<key>`` (one call to the node's own store: a write answers the node's own count)
  and ``GET /count/<key>`` (a read: the node's store plus one remote call to each peer's,
  the sum over the cluster). The keep-alive load comes from
  ``wrk`` in its own process when it is installed (Debian: ``apt-get install wrk``),
  otherwise from this script's own load generator run as a separate process
  (``--load-worker``). Target: K = 2 gives >= 1.6x.
- default (rollout): 3 nodes on 1.0.0 under keep-alive load (this script's clients, from
  ``bench/upgrade_under_load.py``: each connection increments its own key, every answer
  must be the previous value plus one) while the release moves to 1.1.0:

  * **hot**: ``server cluster upgrade demo-1.1.0.tar.gz --health counter.web:health``
    driven from node 1 (copy, check everywhere, canary, one node at a time, permanent);
  * **restart** (the baseline, the same load on a fresh cluster): for each node in turn,
    ``server stop`` it, set its root up again from the 1.1.0 package, ``server start`` it,
    wait until it serves, next. Clients whose node went away reconnect (the kernel hands
    them to a node that listens); a node restarted lost its counts, so the sums drop:
    those answers are counted apart as state lost, not as failed requests.

  Figures: failed requests; the longest time one client went without an answer during the
  rollout (and without any answer to any client); p99 latency during the rollout against
  the steady phase before it; the rollout's total time; whether every count is exact.

Run from the repository root::

    .venv/bin/python bench/cluster_rollout.py --quick             # rollout, under a minute
    .venv/bin/python bench/cluster_rollout.py                     # rollout, 32 connections
    .venv/bin/python bench/cluster_rollout.py --nodes 2 --quick   # throughput, 2 vs 1 node

One JSON object per line on stdout (the format of ``bench/runtime.py``), a human summary on
stderr. Every node is stopped and every temporary folder removed at the end, also on
failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, NoReturn

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.runtime import Result  # noqa: E402
from bench.upgrade_under_load import (  # noqa: E402
    BAD_BODY,
    BROKEN,
    CONNECT_FAILED,
    HOST,
    OK,
    Load,
    Phase,
    Stats,
    all_samples,
    http_get,
    longest_gap,
    no_client_gc,
    overlapping,
    read_response,
    sent_in,
)
from server.release.package import build_package  # noqa: E402
from server.release.source_tree import SourceTree  # noqa: E402
from tests._support.erl_nodes import running_epmd  # noqa: E402
from tests._support.nodes import copy_demo_tree, free_port  # noqa: E402

if TYPE_CHECKING:
    from anyio.abc import SocketStream

TARGET_SCALING: Final = 1.6
FAILURES: Final = (CONNECT_FAILED, BROKEN, 3, BAD_BODY)  # 3: non-2xx
RESTART_FAILURES: Final = (CONNECT_FAILED, BROKEN, 3)  # a reset count is state lost
COMMAND_TIMEOUT: Final = 300.0


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one run."""

    quick: bool
    nodes: int | None  # throughput mode when set
    connections: int
    duration: float
    warmup: float
    repeats: int

    @classmethod
    def load(cls, *, quick: bool, connections: int) -> Config:
        """The sizes of a run of one server under keep-alive load (no cluster)."""
        return cls(
            quick=quick,
            nodes=None,
            connections=connections,
            duration=3.0 if quick else 8.0,
            warmup=1.0,
            repeats=3 if quick else 5,
        )


class Cleanup:
    """Every cluster started and every folder made, undone at the end whatever happens."""

    def __init__(self) -> None:
        self.roots: list[Path] = []
        self.dirs: list[Path] = []

    def tempdir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.dirs.append(path)
        return path

    def run(self) -> None:
        for root in self.roots:
            subprocess.run(
                [sys.executable, "-m", "server", "stop", "--root", str(root)],
                capture_output=True,
                timeout=120,
                check=False,
            )
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


async def server(*args: str) -> str:
    """``server <args>``; its stdout. Fails with its output when it exits non-zero."""
    with anyio.fail_after(COMMAND_TIMEOUT):
        done = await anyio.run_process(
            [sys.executable, "-m", "server", *args], check=False, stdin=subprocess.DEVNULL
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"server {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout.decode()}\n{done.stderr.decode()}"
        )
    return done.stdout.decode()


@dataclass(frozen=True, slots=True)
class Setup:
    """What every cluster of the run uses: the packages and the EPMD's port."""

    packages: dict[str, Path]
    epmd_port: int


def write_config(folder: Path, setup: Setup, port: int, stem: str) -> Path:
    path = folder / "sys.config"
    path.write_text(
        f"""[node]
name = "{stem}"

[node.dist]
name = "{stem}@localhost"
epmd_port = {setup.epmd_port}
start_epmd = false
net_ticktime = 10

[counter]
port = {port}
"""
    )
    return path


async def start_cluster(
    cleanup: Cleanup, setup: Setup, count: int, stem: str
) -> tuple[Path, int, float]:
    """``server start --nodes count``: its root, the shared port and the seconds it took.

    Nodes are named ``<stem>-<i>@localhost``: clusters that run at once need two stems.
    """
    folder = cleanup.tempdir(f"cluster-bench-{stem}-")
    port = free_port()
    config = write_config(folder, setup, port, stem)
    root = folder / "R"
    cleanup.roots.append(root)
    began = perf_counter()
    await server(
        "start", "--nodes", str(count), "--root", str(root), "--release",
        str(setup.packages["1.0.0"]), "--config", str(config),
    )  # fmt: skip
    return root, port, perf_counter() - began


# -- throughput --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """What one load run saw."""

    per_second: float
    failed: int
    p99_ms: float
    tool: str


WRK_POST: Final = 'wrk.method = "POST"\n'
ROUTES: Final = (("/health", "GET"), ("/incr/bench", "POST"), ("/count/bench", "GET"))


async def measure(port: int, path: str, method: str, config: Config, scratch: Path) -> Rate:
    """Keep-alive load on ``port`` for ``config.duration`` s from another process."""
    if shutil.which("wrk") is not None:
        return await _wrk(port, path, method, config, scratch)
    return await _own_load(port, path, method, config)


async def _wrk(port: int, path: str, method: str, config: Config, scratch: Path) -> Rate:
    command = [
        "wrk", "-t1", f"-c{config.connections}", f"-d{config.duration:g}s", "--latency",
        "--timeout", "10s",
    ]  # fmt: skip
    if method == "POST":
        script = scratch / "post.lua"
        script.write_text(WRK_POST)
        command += ["-s", str(script)]
    done = await anyio.run_process([*command, f"http://{HOST}:{port}{path}"], check=True)
    text = done.stdout.decode()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rate is None:
        raise RuntimeError(f"wrk said:\n{text}")
    failed = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    failed += int(non_2xx.group(1)) if non_2xx else 0
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else math.nan
    return Rate(float(rate.group(1)), failed, p99_ms, "wrk -t1")


async def _own_load(port: int, path: str, method: str, config: Config) -> Rate:
    done = await anyio.run_process(
        [
            sys.executable, __file__, "--load-worker", "--port", str(port), "--path", path,
            "--method", method, "--connections", str(config.connections), "--duration",
            str(config.duration),
        ],
        check=True,
    )  # fmt: skip
    seen = json.loads(done.stdout)
    return Rate(seen["per_second"], seen["failed"], seen["p99_ms"], "own load generator")


async def load_worker(port: int, path: str, method: str, connections: int, seconds: float) -> None:
    """``--load-worker``: keep-alive requests on ``connections`` for ``seconds``; JSON out."""
    latencies: list[float] = []
    failed = 0
    message = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: 0\r\n\r\n".encode()
    )
    deadline = perf_counter() + seconds

    async def drive() -> None:
        nonlocal failed
        stream: SocketStream | None = None
        buffer = bytearray()
        while perf_counter() < deadline:
            try:
                if stream is None:
                    stream = await anyio.connect_tcp(HOST, port)
                    buffer.clear()
                sent = perf_counter()
                await stream.send(message)
                status, close, _ = await read_response(stream, buffer)
            except Exception:  # a failed request is what is counted
                failed += 1
                if stream is not None:
                    await stream.aclose()
                stream = None
                continue
            if 200 <= status < 300:
                latencies.append(perf_counter() - sent)
            else:
                failed += 1
            if close:
                await stream.aclose()
                stream = None
        if stream is not None:
            await stream.aclose()

    began = perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(connections):
            group.start_soon(drive)
    latencies.sort()
    p99 = latencies[max(1, math.ceil(0.99 * len(latencies))) - 1] * 1000 if latencies else 0.0
    per_second = len(latencies) / (perf_counter() - began)
    print(json.dumps({"per_second": per_second, "failed": failed, "p99_ms": p99}))


async def throughput(config: Config, cleanup: Cleanup, setup: Setup) -> list[Result]:
    """Both clusters run side by side on two ports; their measures alternate, repeated."""
    assert config.nodes is not None
    scratch = cleanup.tempdir("cluster-bench-scratch-")
    ports = {}
    for count in (1, config.nodes):
        _, ports[count], _ = await start_cluster(cleanup, setup, count, f"n{count}")
        warm = Config(**{**_fields(config), "duration": 1.0})
        await measure(ports[count], "/health", "GET", warm, scratch)
    samples: dict[tuple[int, str], list[Rate]] = {}
    for path, method in ROUTES:
        for _ in range(config.repeats):  # interleaved: a slow spell falls on both sides
            for count in (1, config.nodes):
                measured = await measure(ports[count], path, method, config, scratch)
                samples.setdefault((count, path), []).append(measured)
    out = []
    for path, _method in ROUTES:
        many, one = samples[config.nodes, path], samples[1, path]
        rate, base = _median(many), _median(one)
        out.append(
            Result(
                f"throughput_{path.split('/')[1]}_{config.nodes}_nodes",
                rate,
                "requests/s",
                f"1 node, the same load ({one[0].tool}, {config.connections} keep-alive "
                f"connections, median of {config.repeats} x {config.duration:g} s), requests/s",
                base,
                rate / base if base else math.inf,
                notes=(f"{path}: {config.nodes} nodes {_spell(many)} vs 1 node {_spell(one)}",),
            )
        )
    return out


def _median(rates: list[Rate]) -> float:
    return statistics.median(r.per_second for r in rates)


def _spell(rates: list[Rate]) -> str:
    each = ", ".join(f"{r.per_second:,.0f}" for r in rates)
    p99 = statistics.median(r.p99_ms for r in rates)
    failed = sum(r.failed for r in rates)
    return f"{_median(rates):,.0f}/s (repeats {each}; p99 {p99:.2f} ms; {failed} failed)"


def _fields(config: Config) -> dict[str, Any]:
    return {name: getattr(config, name) for name in Config.__dataclass_fields__}


# -- rollout -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Rollout:
    """One half of the rollout mode: the load, its phases, and what the deploy said."""

    name: str
    load: Load
    steady: Phase
    window: Phase
    started: float
    ended: float
    counts: dict[str, int]
    notes: list[str]


async def _counts(port: int, load: Load) -> dict[str, int]:
    counts: dict[str, int] = {}
    for client in load.clients:
        status, body = await http_get(port, f"/count/{client.key}")
        if status == 200 and isinstance(body.get("value"), int):
            counts[client.key] = body["value"]
    return counts


async def _under_load(
    config: Config,
    cleanup: Cleanup,
    setup: Setup,
    name: str,
    deploy: Any,
) -> Rollout:
    root, port, took = await start_cluster(cleanup, setup, 3, name)
    load = Load(port, config.connections, f"{name}-")
    notes = [f"server start --nodes 3: {took:.1f} s until all served and were connected"]
    async with anyio.create_task_group() as group:
        group.start_soon(load.run)
        try:
            await load.wait_all_served(60)
            await anyio.sleep(config.warmup)
            started = perf_counter()
            steady = Phase("steady (1.0.0)", "steady", started)
            await anyio.sleep(config.duration)
            steady.end = perf_counter()
            window = Phase(f"rollout ({name})", "window", perf_counter())
            notes += await deploy(root)
            window.end = perf_counter()
            await anyio.sleep(config.duration / 2)
        finally:
            load.stop()
    ended = max(s[0] + s[1] for s in all_samples(load))
    counts = await _counts(port, load)
    await server("stop", "--root", str(root))
    cleanup.roots.remove(root)
    return Rollout(name, load, steady, window, started, ended, counts, notes)


async def hot(config: Config, cleanup: Cleanup, setup: Setup) -> Rollout:
    async def deploy(root: Path) -> list[str]:
        text = await server(
            "cluster", "upgrade", str(setup.packages["1.1.0"]), "--health", "counter.web:health",
            "--json", "--root", str(root / "node-1"),
        )  # fmt: skip
        report = json.loads(text)
        if report["outcome"] != "permanent":
            raise RuntimeError(f"the rollout halted: {report}")
        return [
            f"{row['node']}: {row['before']} -> {row['after']} {row['state']} "
            f"({', '.join(row['steps'])})"
            for row in report["nodes"]
        ]

    return await _under_load(config, cleanup, setup, "hot", deploy)


async def restart(config: Config, cleanup: Cleanup, setup: Setup) -> Rollout:
    async def deploy(root: Path) -> list[str]:
        notes = []
        for node_root in [root / f"node-{i}" for i in (1, 2, 3)]:
            began = perf_counter()
            await server("stop", "--root", str(node_root))
            stopped = perf_counter()
            for folder in ("releases", "lib"):  # a fresh set-up from the new package
                shutil.rmtree(node_root / folder)
            await server("start", "--root", str(node_root), "--release",
                         str(setup.packages["1.1.0"]))  # fmt: skip
            notes.append(
                f"{node_root.name}: stopped in {(stopped - began) * 1000:.0f} ms, serving "
                f"1.1.0 {(perf_counter() - stopped) * 1000:.0f} ms later"
            )
        return notes

    return await _under_load(config, cleanup, setup, "restart", deploy)


def client_gap(load: Load, phase: Phase) -> float:
    """The longest time (ms) one client went without a successful answer during ``phase``."""
    worst = 0.0
    for client in load.clients:
        done = sorted(s[0] + s[1] for s in client.samples if s[2] == OK)
        marks = [phase.start, *(t for t in done if phase.start < t < phase.end), phase.end]
        worst = max(worst, *(b - a for a, b in itertools.pairwise(marks)))
    return worst * 1000


@dataclass(frozen=True, slots=True)
class Figures:
    """The headline numbers of one half."""

    failed: int
    lost_state: int
    client_gap: float
    any_gap: float
    steady_p99: float
    window_p99: float
    seconds: float
    consistent: int

    @staticmethod
    def of(run: Rollout, failures: tuple[int, ...]) -> Figures:
        measured = [s for s in all_samples(run.load) if s[0] >= run.started]
        return Figures(
            failed=sum(1 for s in measured if s[2] in failures),
            lost_state=sum(1 for s in measured if s[2] == BAD_BODY),
            client_gap=client_gap(run.load, run.window),
            any_gap=longest_gap(run.load, run.window.start, run.window.end)[0],
            steady_p99=Stats.of(sent_in(run.load, run.steady), 1.0).p99,
            window_p99=Stats.of(overlapping(run.load, run.window), 1.0).p99,
            seconds=run.window.end - run.window.start,
            consistent=int(all(run.counts.get(c.key) == c.acknowledged for c in run.load.clients)),
        )


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else value


def rollout_results(h: Figures, r: Figures) -> list[Result]:
    base = "restart-based rolling deploy of the same 3 nodes"
    return [
        Result("rollout_failed_requests", h.failed, "requests",
               f"{base}: failed requests", r.failed, ratio(h.failed, r.failed)),
        Result("rollout_longest_client_gap", h.client_gap, "ms",
               f"{base}: longest time one client had no answer, ms", r.client_gap,
               ratio(h.client_gap, r.client_gap)),
        Result("rollout_longest_gap_any_answer", h.any_gap, "ms",
               f"{base}: longest time with no answer to any client, ms", r.any_gap,
               ratio(h.any_gap, r.any_gap)),
        Result("rollout_p99_over_steady", h.window_p99, "ms",
               "p99 of the steady phase before the rollout, ms", h.steady_p99,
               ratio(h.window_p99, h.steady_p99)),
        Result("restart_p99_over_steady", r.window_p99, "ms",
               "p99 of the restart deploy's steady phase, ms", r.steady_p99,
               ratio(r.window_p99, r.steady_p99)),
        Result("rollout_time", h.seconds * 1000, "ms", f"{base}: total time, ms",
               r.seconds * 1000, ratio(h.seconds, r.seconds)),
        Result("rollout_state_consistent", h.consistent, "bool",
               f"{base}: every count exact", r.consistent, ratio(h.consistent, r.consistent)),
    ]  # fmt: skip


def rollout_summary(config: Config, runs: list[Rollout], figures: list[Figures]) -> str:
    lines = [
        "",
        "=" * 100,
        f"rollout across 3 local nodes ({'quick' if config.quick else 'full'}): "
        f"{config.connections} keep-alive connections, {config.duration:g} s steady phase, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs",
    ]
    for run, f in zip(runs, figures, strict=True):
        measured = [s for s in all_samples(run.load) if s[0] >= run.started]
        errors: dict[str, int] = {}
        for client in run.load.clients:
            for what, n in client.errors.items():
                errors[what] = errors.get(what, 0) + n
        lines += [
            "",
            f"{run.name}: {len(measured)} requests measured, {f.failed} failed, "
            f"{f.lost_state} answers with a count that went back (state lost)",
            f"  rollout {f.seconds:.2f} s; p99 {f.window_p99:.2f} ms during it vs "
            f"{f.steady_p99:.2f} ms steady; longest time one client had no answer "
            f"{f.client_gap:.0f} ms, no answer to anyone {f.any_gap:.0f} ms",
            f"  counts exact after: {bool(f.consistent)}",
            *(f"  {note}" for note in run.notes),
        ]
        if errors:
            lines.append("  errors: " + ", ".join(f"{w} x{n}" for w, n in sorted(errors.items())))
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


async def bench(config: Config, cleanup: Cleanup) -> tuple[list[Result], str]:
    async with running_epmd() as epmd:
        tree = SourceTree(copy_demo_tree(cleanup.tempdir("cluster-bench-tree-")))
        packages = {
            vsn: build_package(tree, "demo", vsn, tree.root / "build").path
            for vsn in ("1.0.0", "1.1.0")
        }
        setup = Setup(packages, epmd.port)
        if config.nodes is not None:
            results = await throughput(config, cleanup, setup)
            text = "\n".join(["", *(n for r in results for n in r.notes)])
            return results, text
        with no_client_gc():
            runs = [await hot(config, cleanup, setup)]
        with no_client_gc():
            runs.append(await restart(config, cleanup, setup))
    figures = [Figures.of(runs[0], FAILURES), Figures.of(runs[1], RESTART_FAILURES)]
    return rollout_results(*figures), rollout_summary(config, runs, figures)


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="short phases (and 8 connections for the rollout)"
    )
    parser.add_argument(
        "--nodes", type=int, help="throughput mode: K nodes against 1 (default: the rollout)"
    )
    parser.add_argument("--connections", type=int, help="keep-alive clients (default 32)")
    parser.add_argument("--duration", type=float, help="seconds per measured phase")
    parser.add_argument("--load-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.load_worker:
        anyio.run(
            load_worker,
            options.port,
            options.path,
            options.method,
            options.connections,
            options.duration,
            backend="asyncio",
        )
        return 0
    nodes = options.nodes
    if nodes is not None and nodes < 2:
        parser.error("--nodes takes 2 or more (it is measured against 1 node)")
    # rollout: one steady phase (and half one after); throughput: 3 routes x repeats x 2
    durations = {(True, True): 5.0, (True, False): 15.0, (False, True): 3.0, (False, False): 8.0}
    duration = durations[nodes is None, options.quick]
    config = Config(
        quick=options.quick,
        nodes=nodes,
        connections=options.connections or (8 if options.quick and nodes is None else 32),
        duration=options.duration or duration,
        warmup=0.5 if options.quick else 1.0,
        repeats=3 if options.quick else 5,
    )
    cleanup = Cleanup()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    try:
        results, text = anyio.run(bench, config, cleanup, backend="asyncio")
    except KeyboardInterrupt:
        print("interrupted: stopping nodes, removing temporary folders", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(Exception):
            cleanup.run()
        signal.signal(signal.SIGTERM, previous)
    for result in results:
        print(result.json(), flush=True)
    if config.nodes is not None:
        scaling = results[0].ratio
        verdict = "met" if scaling >= TARGET_SCALING else "NOT met"
        text += f"\ntarget {TARGET_SCALING:g}x with {config.nodes} nodes (GET /health): {verdict}"
    print(text + f"\n(wall time {time.monotonic() - began:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
