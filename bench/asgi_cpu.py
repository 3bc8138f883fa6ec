"""The CPU time per request of the node and of uvicorn serving the same Starlette app.

``bench/asgi.py`` compares rates, which move by tens of percent on a shared machine; the
server process's own CPU time (user and system, from ``/proc/<pid>/stat``, Linux) divided
by the requests it answered moves much less, so the node's own per-request cost can be
compared with uvicorn's in the same run. Each server is a real OS process on loopback
(``bench/asgi.py``'s servers: the node, uvicorn with httptools and with h11 when they are
installed), measured in turn, interleaved, ``repeats`` times; the median is kept.

Run from the repository root::

    .venv/bin/python bench/asgi_cpu.py --quick --connections 4

One JSON object per line on stdout, a human summary on stderr. Every server is stopped by
its pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.asgi import PATH, _command, _free_port, _wait_listening  # noqa: E402
from bench.cluster_rollout import Config, measure  # noqa: E402
from bench.runtime import Result, emit  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one(server: str, config: Config, scratch: Path) -> tuple[float, float]:
    """``(CPU µs per request, requests/s)`` of one run of ``server``."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = await anyio.open_process(_command(server, port), cwd=ROOT, env=env)
    try:
        await _wait_listening(port, process)
        warm = Config(config.quick, None, config.connections, config.warmup, 0.0, 1)
        await measure(port, PATH, "GET", warm, scratch)
        before = _cpu_seconds(process.pid)
        rate = await measure(port, PATH, "GET", config, scratch)
        used = _cpu_seconds(process.pid) - before
        answered = max(rate.per_second * config.duration, 1.0)
        return used / answered * 1e6, rate.per_second
    finally:
        process.kill()  # by its pid
        await process.wait()


async def bench(config: Config) -> tuple[list[Result], str]:
    servers = ["node"]
    missing = [m for m in ("uvicorn", "httptools") if importlib.util.find_spec(m) is None]
    if not missing:
        servers += ["uvicorn-httptools", "uvicorn-h11"]
    runs: dict[str, list[tuple[float, float]]] = {server: [] for server in servers}
    with tempfile.TemporaryDirectory(prefix="bench-asgi-cpu-") as scratch:
        for _ in range(config.repeats):
            for server in servers:
                runs[server].append(await _one(server, config, Path(scratch)))
    cpu = {s: statistics.median(us for us, _ in runs[s]) for s in servers}
    rate = {s: statistics.median(r for _, r in runs[s]) for s in servers}
    lines = [f"GET {PATH}, {config.connections} keep-alive connections, CPU per request, "
             f"median of {config.repeats} x {config.duration:g} s"]  # fmt: skip
    lines.extend(
        f"  {server:18} {cpu[server]:7.1f} us/request  {rate[server]:9,.0f} req/s"
        for server in servers
    )
    if missing:
        lines.append(f"  uvicorn baselines skipped: pip install {' '.join(missing)}")
        return [Result("asgi_node_cpu", cpu["node"], "us/request", "none", 0.0, 0.0)], "\n".join(
            lines
        )
    base = "uvicorn-httptools"
    results = [
        Result("asgi_node_cpu", cpu["node"], "us/request", base, cpu[base],
               cpu["node"] / cpu[base]),
        Result("asgi_node_cpu_vs_h11", cpu["node"], "us/request", "uvicorn-h11",
               cpu["uvicorn-h11"], cpu["node"] / cpu["uvicorn-h11"]),
    ]  # fmt: skip
    lines.append(
        f"  node / uvicorn-httptools: {cpu['node'] / cpu[base]:.2f}x CPU per request; "
        f"node / uvicorn-h11: {cpu['node'] / cpu['uvicorn-h11']:.2f}x"
    )
    return results, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s phases, 3 repeats")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive clients")
    options = parser.parse_args(argv)
    if not Path("/proc/self/stat").exists():
        print("bench/asgi_cpu.py reads /proc: Linux only", file=sys.stderr)
        return 1
    config = Config.load(quick=options.quick, connections=options.connections)
    results, text = anyio.run(bench, config, backend="asyncio")
    emit(results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
