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
    .venv/bin/python bench/soak.py --quick --gc off   # the node's [node.gc] policy off

The node is stopped and the temporary root removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the shared node helpers live in tests/
    sys.path.insert(0, str(REPO))

from server.release.package import build_package  # noqa: E402
from server.release.source_tree import SourceTree  # noqa: E402
from tests._support.nodes import (  # noqa: E402
    IncrementingClient,
    NodeProcess,
    copy_demo_tree,
    free_port,
    http_json,
    set_port,
)

LISTENING = "control: listening"


def prepare_root(root: Path, port: int, gc_freeze: bool = True) -> None:
    copy_demo_tree(root)
    set_port(root, port)
    if not gc_freeze:  # the node's [node.gc] policy off: Python's own collector settings
        with (root / "sys.config").open("a") as config:
            config.write("\n[node.gc]\nfreeze = false\ndefer_full = false\n")
    for vsn in ("1.1.0", "2.0.0"):
        build_package(SourceTree(root), "demo", vsn, root / "build")


def cycle(node: NodeProcess, first: bool) -> None:
    for vsn in ("1.1.0", "2.0.0"):
        if first:
            node.control("upgrade", package=str(node.root / "build" / f"demo-{vsn}.tar.gz"))
        else:
            node.control("install", vsn=vsn)
            node.control("permanent", vsn=vsn)
    for _ in range(2):
        node.control("rollback")


def sample(
    node: NodeProcess, index: int, clients: list[IncrementingClient], seconds: float
) -> dict[str, Any]:
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
    parser.add_argument(
        "--gc",
        choices=["policy", "off"],
        default="policy",
        help="the node's [node.gc] policy (default), or off (freeze and defer_full false)",
    )
    args = parser.parse_args()
    cycles = args.cycles or (10 if args.quick else 200)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="server-soak-") as scratch:
        root = Path(scratch)
        port = free_port()
        prepare_root(root, port, gc_freeze=args.gc == "policy")
        node = NodeProcess(root, ["run"], port).start()
        clients: list[IncrementingClient] = []
        try:
            try:
                node.wait_for(LISTENING, 60)
            except AssertionError:
                raise SystemExit(f"the node did not come up:\n{node.tail()}") from None
            clients = [IncrementingClient(port, f"soak{i}") for i in range(args.clients)]
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
            node.terminate(30)
    print(
        f"soak: [node.gc] {'policy (freeze, defer_full)' if args.gc == 'policy' else 'off'}",
        file=sys.stderr,
    )
    summary(rows, problems, clients, time.monotonic() - began)
    return 1 if problems else 0


def check_end(node: NodeProcess, clients: list[IncrementingClient]) -> list[str]:
    problems: list[str] = []
    for client in clients:
        _status, body = http_json(client.port, "GET", f"/count/{client.key}")
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
    rows: list[dict[str, Any]],
    problems: list[str],
    clients: list[IncrementingClient],
    seconds: float,
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
