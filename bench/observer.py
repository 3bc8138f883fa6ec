"""The observer's own cost: the demo node under load, with and without an observer page open.

One demo node (``server run`` on a copy of the demo, an OS process, with
``[node.observer]`` in its sys.config) serves ``GET /count/bench`` to keep-alive load from
``wrk`` in its own process (Debian: ``apt-get install wrk``; else the rollout benchmark's
load generator). The phases alternate, ``repeats`` times each, and the medians are kept:

- **without**: nobody watches;
- **with**: a client reads the observer's push stream (``/events``, what an open page
  subscribes to) of the processes view (the costliest: every process's record and stack,
  every ``interval``), on its own connection, counting the views it gets.

Figures: requests per second, p99 latency and the node's CPU time per request (from
``/proc``) of each phase, and the ratios with/without (target: the observer costs under
5 %: rate ratio >= 0.95). On a machine shared with other work those ratios move by tens of
percent between runs, so the run also measures the observer's own work: the node's CPU
time per push, at rest, with as many processes listed as under load, as a share of the
node's CPU under load (target under 5 %).

Run from the repository root::

    .venv/bin/python bench/observer.py --quick

One JSON object per line on stdout (the format of ``bench/runtime.py``), a human summary on
stderr. The node is stopped by its pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.cluster_rollout import Config, Rate, measure  # noqa: E402
from bench.runtime import Result, emit  # noqa: E402
from tests._support.nodes import NodeProcess, copy_demo_tree, free_port, set_port  # noqa: E402

PATH = "/count/bench"
#: Pages open at once, and the seconds at rest, when one push's own cost is measured.
WATCHERS = 20
REST = 5.0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) the OS process ``pid`` has used, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def phase(pid: int, port: int, config: Config, scratch: Path) -> tuple[Rate, float]:
    """One load run, and the node's CPU milliseconds per request during it."""
    before = cpu_seconds(pid)
    rate = await measure(port, PATH, "GET", config, scratch)
    used = cpu_seconds(pid) - before
    return rate, used * 1000 / max(1.0, rate.per_second * config.duration)


class Watcher(threading.Thread):
    """An open observer page, as the node sees it: one client reading the push stream."""

    def __init__(self, url: str, view: str) -> None:
        super().__init__(daemon=True)
        address, token = url.split("/")[2], url.split("token=")[1]
        host, port = address.rsplit(":", 1)
        self.socket = socket.create_connection((host, int(port)), timeout=30)
        self.request = f"GET /events?view={view}&token={token} HTTP/1.1\r\nHost: {address}\r\n\r\n"
        self.views = 0
        self.subscribed = threading.Event()

    def run(self) -> None:
        self.socket.sendall(self.request.encode())
        seen = b""
        try:
            while chunk := self.socket.recv(65536):
                seen = seen[-16:] + chunk
                if b" 200 " in chunk:
                    self.subscribed.set()
                self.views += chunk.count(b"event: view")
        except OSError:
            pass  # closed by stop()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # the node may have closed it first
            self.socket.shutdown(socket.SHUT_RDWR)
        self.join(10)
        self.socket.close()


async def push_cost(pid: int, port: int, url: str, view: str) -> tuple[float, int]:
    """CPU milliseconds one push costs the node, and how many processes it showed.

    Measured at rest with as many idle keep-alive connections open as the load had (so the
    view lists as many processes), as the CPU used with ``WATCHERS`` pages open less the CPU
    used with none, over the pushes they got: the observer's own work, which other work on
    the machine does not make larger.
    """
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:
        before = cpu_seconds(pid)
        await anyio.sleep(REST)  # a measured span of time at rest, not a wait for an event
        baseline = cpu_seconds(pid) - before
        watchers = [Watcher(url, view) for _ in range(WATCHERS)]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            if not watcher.subscribed.wait(10):
                raise RuntimeError("the observer's stream did not answer")
        before = cpu_seconds(pid)
        first = sum(w.views for w in watchers)
        await anyio.sleep(REST)
        used = cpu_seconds(pid) - before
        pushes = sum(w.views for w in watchers) - first
        for watcher in watchers:
            watcher.stop()
        status, rows = await anyio.to_thread.run_sync(_view, url, view)
        return (used - baseline) * 1000 / max(1, pushes), len(rows) if status == 200 else 0
    finally:
        for sock in idle:
            sock.close()


def _view(url: str, view: str) -> tuple[int, list[object]]:
    with urllib.request.urlopen(url.replace("/?", f"/api/{view}?"), timeout=10) as answer:
        return answer.status, json.loads(answer.read())


async def bench(config: Config, view: str) -> tuple[list[Result], str]:
    with tempfile.TemporaryDirectory(prefix="bench-observer-") as scratch:
        root = copy_demo_tree(Path(scratch) / "tree")
        port = free_port()
        set_port(root, port)
        with (root / "sys.config").open("a") as sys_config:
            sys_config.write("\n[node.observer]\nport = 0\ninterval = 1.0\n")
        node = NodeProcess(root, ["run"], port).start()
        try:
            await anyio.to_thread.run_sync(node.wait_for, "control: listening")
            url = (await anyio.to_thread.run_sync(node.control, "observer"))["url"]
            warm = Config(config.quick, None, config.connections, config.warmup, 0.0, 1)
            await measure(port, PATH, "GET", warm, Path(scratch))
            rates: dict[str, list[Rate]] = {"without": [], "with": []}
            cpu: dict[str, list[float]] = {"without": [], "with": []}
            views = []
            pid = node.process.pid
            for _ in range(config.repeats):
                rate, per_request = await phase(pid, port, config, Path(scratch))
                rates["without"].append(rate)
                cpu["without"].append(per_request)
                watcher = Watcher(url, view)
                watcher.start()
                if not watcher.subscribed.wait(10):
                    raise RuntimeError("the observer's stream did not answer")
                try:
                    rate, per_request = await phase(pid, port, config, Path(scratch))
                finally:
                    watcher.stop()
                rates["with"].append(rate)
                cpu["with"].append(per_request)
                views.append(watcher.views)
            push_ms, processes = await push_cost(pid, port, url, view)
            node_cpu = statistics.median(
                c / 1000 * r.per_second
                for c, r in zip(cpu["without"], rates["without"], strict=True)
            )  # the node's CPU seconds per second (cores) under load, without the observer
        finally:
            node.kill()  # by its pid
    rps = {k: statistics.median(r.per_second for r in v) for k, v in rates.items()}
    p99 = {k: statistics.median(r.p99_ms for r in v) for k, v in rates.items()}
    failed = {k: sum(r.failed for r in v) for k, v in rates.items()}
    cost = {k: statistics.median(v) for k, v in cpu.items()}
    cpu_ratio = cost["with"] / cost["without"]
    ratio = rps["with"] / rps["without"]
    p99_ratio = p99["with"] / p99["without"]
    tool = rates["without"][0].tool
    lines = [
        f"GET {PATH} on the demo node, {config.connections} keep-alive connections, {tool}, "
        f"median of {config.repeats} x {config.duration:g} s per phase, alternated",
        *(
            f"  {name:8} {rps[name]:9,.0f} req/s  p99 {p99[name]:7.2f} ms  "
            f"node CPU {cost[name] * 1000:6.1f} us/request  failed {failed[name]}"
            for name in ("without", "with")
        ),
        f"  with an observer page open ({view} view pushed every 1 s, {min(views)}-"
        f"{max(views)} views per phase): {ratio:.3f}x rate ({(1 - ratio) * 100:+.1f} % cost; "
        f"target < 5 %), {p99_ratio:.2f}x p99, {cpu_ratio:.3f}x the node's CPU per request "
        f"({(cpu_ratio - 1) * 100:+.1f} %)",
        f"  one push at rest ({processes} processes listed, {WATCHERS} pages open for "
        f"{REST:g} s): {push_ms:.2f} ms of the node's CPU; one page pushed every 1 s costs "
        f"{push_ms / 10:.2f} % of a core, {push_ms / (node_cpu * 10):.2f} % of the node's CPU "
        f"under this load ({node_cpu:.2f} cores)",
    ]
    results = [
        Result("observer_rps", rps["with"], "requests/s", "no observer page", rps["without"],
               ratio, ("target >= 0.95",)),
        Result("observer_p99", p99["with"], "ms", "no observer page", p99["without"],
               p99_ratio),
        Result("observer_push_cpu_ms", push_ms, "ms", "the node's CPU per second under load",
               node_cpu * 1000, push_ms / (node_cpu * 1000), ("target <= 0.05",)),
        Result("observer_cpu_per_request", cost["with"] * 1000, "us", "no observer page",
               cost["without"] * 1000, cpu_ratio, ("target <= 1.05",)),
    ]  # fmt: skip
    return results, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s phases, 3 repeats")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive clients")
    parser.add_argument(
        "--view", default="processes", help="the view the open page watches (processes)"
    )
    options = parser.parse_args(argv)
    config = Config.load(quick=options.quick, connections=options.connections)
    results, text = anyio.run(bench, config, options.view, backend="asyncio")
    emit(results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
