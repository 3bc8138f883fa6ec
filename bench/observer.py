"""The observer's own cost: the demo node under load, with and without an observer page open.

One demo node (``server run`` on a copy of the demo, an OS process, with
``[node.observer]`` in its sys.config) serves ``GET /count/bench`` to keep-alive load from
``wrk`` in its own process (Debian: ``apt-get install wrk``; else the rollout benchmark's
load generator). The phases alternate, ``repeats`` times each, and the medians are kept:

- **without**: nobody watches;
- **with**: a client reads the observer's push stream (``/events``, what an open page
  subscribes to) of the processes view (the costliest: every process's record and stack,
  every ``interval``), on its own connection, counting the views it gets.

Figures: requests per second and p99 latency of each phase, and the ratio with/without
(target: the observer costs under 5 %: rate ratio >= 0.95).

Run from the repository root::

    .venv/bin/python bench/observer.py --quick

One JSON object per line on stdout (the format of ``bench/runtime.py``), a human summary on
stderr. The node is stopped by its pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.cluster_rollout import Config, Rate, measure  # noqa: E402
from bench.runtime import Result  # noqa: E402
from tests._support.nodes import NodeProcess, copy_demo_tree, free_port, set_port  # noqa: E402

PATH = "/count/bench"


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
            views = []
            for _ in range(config.repeats):
                rates["without"].append(await measure(port, PATH, "GET", config, Path(scratch)))
                watcher = Watcher(url, view)
                watcher.start()
                if not watcher.subscribed.wait(10):
                    raise RuntimeError("the observer's stream did not answer")
                try:
                    rates["with"].append(await measure(port, PATH, "GET", config, Path(scratch)))
                finally:
                    watcher.stop()
                views.append(watcher.views)
        finally:
            node.kill()  # by its pid
    rate = {k: statistics.median(r.per_second for r in v) for k, v in rates.items()}
    p99 = {k: statistics.median(r.p99_ms for r in v) for k, v in rates.items()}
    failed = {k: sum(r.failed for r in v) for k, v in rates.items()}
    ratio = rate["with"] / rate["without"]
    p99_ratio = p99["with"] / p99["without"]
    tool = rates["without"][0].tool
    lines = [
        f"GET {PATH} on the demo node, {config.connections} keep-alive connections, {tool}, "
        f"median of {config.repeats} x {config.duration:g} s per phase, alternated",
        *(
            f"  {phase:8} {rate[phase]:9,.0f} req/s  p99 {p99[phase]:7.2f} ms  "
            f"failed {failed[phase]}"
            for phase in ("without", "with")
        ),
        f"  with an observer page open ({view} view pushed every 1 s, {min(views)}-"
        f"{max(views)} views per phase): {ratio:.3f}x rate ({(1 - ratio) * 100:+.1f} % cost; "
        f"target < 5 %), {p99_ratio:.2f}x p99",
    ]
    results = [
        Result("observer_rps", rate["with"], "requests/s", "no observer page", rate["without"],
               ratio, ("target >= 0.95",)),
        Result("observer_p99", p99["with"], "ms", "no observer page", p99["without"],
               p99_ratio),
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
    config = Config(
        quick=options.quick,
        nodes=None,
        connections=options.connections,
        duration=3.0 if options.quick else 8.0,
        warmup=1.0,
        repeats=3 if options.quick else 5,
    )
    results, text = anyio.run(bench, config, options.view, backend="asyncio")
    for result in results:
        print(result.json(), flush=True)
    print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
