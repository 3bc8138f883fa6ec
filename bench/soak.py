"""Soak: the demo node under continuous load, upgraded and rolled back again and again.

What it does: a temporary root holds a copy of the repository's ``releases/``,
``appspecs/``, ``apps/`` and ``sys.config`` on a free port; the packages of demo 1.1.0 and
2.0.0 are built there; the node is a real OS process (``python -m server run --root R``).
``--clients`` threads of this script each keep one HTTP/1.1 keep-alive connection and send
``POST /incr/<their own key>`` back to back, so each answer's value must be the previous
one plus 1. Then, ``--cycles`` times: upgrade to 1.1.0, upgrade to 2.0.0 (install and make
permanent, over the control socket; the first cycle unpacks the packages too), rollback to
1.1.0, rollback to 1.0.0.

After each cycle one line of JSON on stdout: the node's resident memory (``VmRSS`` of
``/proc/<pid>/status``, kB), its process count (control ``status``), the module versions in
memory (control ``code``: all rows, and those in the ``old`` slot), the requests answered
and failed so far, and the cycle's seconds. A failed request is a connection error, a
non-200 status or a wrong body (another key, a value that is not the previous + 1).

At the end: ``GET /count/<key>`` must equal what each client saw acknowledged, the node
must run 1.0.0 with RELEASES saying ``1.0.0`` permanent and the others ``old``, and the
summary (stderr) says whether memory, processes and module versions stayed flat (the
growth over the second half of the run, per cycle). Exit status 1 when anything failed.

Run from the repository root::

    .venv/bin/python bench/soak.py --quick          # 10 cycles, well under a minute
    .venv/bin/python bench/soak.py                  # 200 cycles
    .venv/bin/python bench/soak.py --cycles 50

The node is stopped and the temporary root removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from server.control.client import request_sync
from server.release.package import build_package
from server.release.source_tree import SourceTree

REPO = Path(__file__).resolve().parents[1]
LISTENING = "control: listening"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prepare_root(root: Path, port: int) -> None:
    for name in ("releases", "appspecs", "apps"):
        shutil.copytree(
            REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.tar.gz")
        )
    config = (REPO / "sys.config").read_text().replace("port = 8080", f"port = {port}")
    (root / "sys.config").write_text(config)
    for vsn in ("1.1.0", "2.0.0"):
        build_package(SourceTree(root), "demo", vsn, root / "build")


class Node:
    """``python -m server run`` on a root; its output kept in ``node.log``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = (root / "node.log").open("w")
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "run", "--root", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            if LISTENING in line:
                self.ready.set()
        self.ready.set()  # ended: wait_ready sees the exit

    def wait_ready(self) -> None:
        if not self.ready.wait(60) or self.process.poll() is not None:
            raise SystemExit(f"the node did not come up: see {self.root / 'node.log'}")

    def control(self, command: str, timeout: float = 120.0, **args: str) -> Any:
        return request_sync(self.root / "run" / "control.sock", command, args, timeout=timeout)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Client(threading.Thread):
    """One keep-alive connection incrementing one key; counts what went wrong."""

    def __init__(self, port: int, key: str) -> None:
        super().__init__(daemon=True)
        self.port, self.key = port, key
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stopping.is_set():
            try:
                conn.request("POST", f"/incr/{self.key}")
                response = conn.getresponse()
                body = json.loads(response.read())
            except Exception as exc:  # a failed request is what the soak counts
                self.failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            if response.status != 200 or body.get("value") != self.ok + 1:
                self.failures.append(f"{response.status} {body}")
                self.ok = body.get("value", self.ok) if isinstance(body, dict) else self.ok
            else:
                self.ok += 1
        conn.close()


def cycle(node: Node, first: bool) -> None:
    for vsn in ("1.1.0", "2.0.0"):
        if first:
            node.control("upgrade", package=str(node.root / "build" / f"demo-{vsn}.tar.gz"))
        else:
            node.control("install", vsn=vsn)
            node.control("permanent", vsn=vsn)
    for _ in range(2):
        node.control("rollback")


def sample(node: Node, index: int, clients: list[Client], seconds: float) -> dict[str, Any]:
    code = node.control("code")
    return {
        "cycle": index,
        "rss_kb": node.rss_kb(),
        "processes": node.control("status")["processes"],
        "module_versions": len(code),
        "old_versions": sum(1 for row in code if row["slot"] == "old"),
        "requests_ok": sum(c.ok for c in clients),
        "requests_failed": sum(len(c.failures) for c in clients),
        "seconds": round(seconds, 3),
    }


def growth(rows: list[dict[str, Any]], key: str) -> float:
    """Per-cycle slope of ``key`` over the second half (least squares), 0 with < 4 rows."""
    half = rows[len(rows) // 2 :]
    if len(half) < 2:
        return 0.0
    xs = [float(r["cycle"]) for r in half]
    ys = [float(r[key]) for r in half]
    return statistics.linear_regression(xs, ys).slope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, help="upgrade/rollback cycles (default 200)")
    parser.add_argument("--quick", action="store_true", help="10 cycles")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive clients (default 4)")
    args = parser.parse_args()
    cycles = args.cycles or (10 if args.quick else 200)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="server-soak-") as scratch:
        root = Path(scratch)
        port = free_port()
        prepare_root(root, port)
        node = Node(root)
        clients: list[Client] = []
        try:
            node.wait_ready()
            clients = [Client(port, f"soak{i}") for i in range(args.clients)]
            for client in clients:
                client.start()
            rows = [sample(node, 0, clients, 0.0)]
            print(json.dumps(rows[0]), flush=True)
            for index in range(1, cycles + 1):
                start = time.monotonic()
                cycle(node, first=index == 1)
                rows.append(sample(node, index, clients, time.monotonic() - start))
                print(json.dumps(rows[-1]), flush=True)
            for client in clients:
                client.stopping.set()
            for client in clients:
                client.join(30)
            problems = check_end(node, clients)
        finally:
            for client in clients:
                client.stopping.set()
            node.stop()
    summary(rows, problems, clients, time.monotonic() - began)
    return 1 if problems else 0


def check_end(node: Node, clients: list[Client]) -> list[str]:
    problems: list[str] = []
    for client in clients:
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
        try:
            conn.request("GET", f"/count/{client.key}")
            body = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if body.get("value") != client.ok:
            problems.append(f"{client.key}: the node counts {body}, the client saw {client.ok}")
        problems.extend(f"{client.key}: {failure}" for failure in client.failures[:5])
    statuses = {row["vsn"]: row["status"] for row in node.control("releases")}
    if statuses != {"1.0.0": "permanent", "1.1.0": "old", "2.0.0": "old"}:
        problems.append(f"RELEASES statuses {statuses}")
    release = node.control("ping")["release"]
    if release != "1.0.0":
        problems.append(f"running {release}, not 1.0.0")
    return problems


def summary(
    rows: list[dict[str, Any]], problems: list[str], clients: list[Client], seconds: float
) -> None:
    first, last = rows[0], rows[-1]
    cycles = last["cycle"]
    per_cycle = [r["seconds"] for r in rows[1:]]
    out = sys.stderr
    print(f"soak: {cycles} cycles in {seconds:.1f} s", file=out)
    if per_cycle:
        print(f"  cycle: median {statistics.median(per_cycle):.2f} s", file=out)
    for key, unit in (("rss_kb", "kB"), ("processes", ""), ("module_versions", "")):
        values = [r[key] for r in rows]
        print(
            f"  {key}: start {first[key]}{unit}, after cycle 1 {rows[min(1, cycles)][key]}{unit}, "
            f"end {last[key]}{unit}, max {max(values)}{unit}, "
            f"second-half slope {growth(rows, key):+.2f}{unit}/cycle",
            file=out,
        )
    print(
        f"  requests: {last['requests_ok']} ok, {last['requests_failed']} failed "
        f"({len(clients)} keep-alive clients)",
        file=out,
    )
    if problems:
        print("PROBLEMS:", *problems, sep="\n  ", file=out)
    else:
        print("  state consistent: every count exact; 1.0.0 permanent and running", file=out)


if __name__ == "__main__":
    raise SystemExit(main())
