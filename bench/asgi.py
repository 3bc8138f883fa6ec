"""The same Starlette application served by a node and by uvicorn, one process each.

Each server is a real OS process on loopback, serving ``bench/_callbacks/starlette_app.py``
(``GET /json``, a small JSON answer):

- **node**: a kernel node running ``server.net.asgi_server`` (its default parser,
  httptools; one process per connection, the application looked up in its current
  version at each request);
- **uvicorn --http httptools** and **uvicorn --http h11**, the baselines, in the same run
  (``pip install uvicorn httptools``; missing, they are skipped with a line that says so).

Keep-alive load from ``wrk`` in its own process when it is installed (Debian: ``apt-get
install wrk``), else from the rollout benchmark's own load generator; the servers are
measured in turn, interleaved, ``repeats`` times, and the median is kept. Figures:
requests per second and p99 latency, and their ratios to uvicorn with httptools (targets:
at least 0.8 times its rate, p99 within 1.5 times).

Run from the repository root::

    .venv/bin/python bench/asgi.py --quick

One JSON object per line on stdout (the format of ``bench/runtime.py``), a human summary on
stderr. Every server is stopped by its pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.cluster_rollout import Config, Rate, measure  # noqa: E402
from bench.runtime import Result, emit  # noqa: E402

if TYPE_CHECKING:
    from anyio.abc import Process

APP: Final = "bench._callbacks.starlette_app:app"
PATH: Final = "/json"
HOST: Final = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_listening(port: int, process: Process) -> None:
    """Poll (bounded, backing off) until ``port`` accepts: a fact, not a duration."""
    delay = 0.01
    for _ in range(80):
        if process.returncode is not None:
            raise RuntimeError(f"the server ended with {process.returncode} before listening")
        try:
            stream = await anyio.connect_tcp(HOST, port)
        except OSError:
            await anyio.sleep(delay)  # polling a fact: does it accept connections yet?
            delay = min(delay * 2, 0.25)
            continue
        await stream.aclose()
        return
    raise RuntimeError(f"nothing listens on {port}")


def _command(server: str, port: int) -> list[str]:
    if server == "node":
        return [sys.executable, __file__, "--serve-node", "--port", str(port)]
    http = server.removeprefix("uvicorn-")
    return [
        sys.executable, "-m", "uvicorn", APP, "--host", HOST, "--port", str(port),
        "--http", http, "--no-access-log", "--log-level", "warning", "--workers", "1",
        "--loop", "asyncio",
    ]  # fmt: skip


async def _one(server: str, config: Config, scratch: Path) -> Rate:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = await anyio.open_process(_command(server, port), cwd=ROOT, env=env)
    try:
        await _wait_listening(port, process)
        warm = Config(config.quick, None, config.connections, config.warmup, 0.0, 1)
        await measure(port, PATH, "GET", warm, scratch)
        return await measure(port, PATH, "GET", config, scratch)
    finally:
        process.kill()  # by its pid
        await process.wait()


async def bench(config: Config) -> tuple[list[Result], str]:
    servers = ["node"]
    missing = [m for m in ("uvicorn", "httptools") if importlib.util.find_spec(m) is None]
    if not missing:
        servers += ["uvicorn-httptools", "uvicorn-h11"]
    rates: dict[str, list[Rate]] = {server: [] for server in servers}
    with tempfile.TemporaryDirectory(prefix="bench-asgi-") as scratch:
        for _ in range(config.repeats):
            for server in servers:
                rates[server].append(await _one(server, config, Path(scratch)))
    rate = {s: statistics.median(r.per_second for r in rates[s]) for s in servers}
    p99 = {s: statistics.median(r.p99_ms for r in rates[s]) for s in servers}
    failed = {s: sum(r.failed for r in rates[s]) for s in servers}
    tool = rates["node"][0].tool
    lines = [f"GET {PATH}, {config.connections} keep-alive connections, {tool}, median of "
             f"{config.repeats} x {config.duration:g} s"]  # fmt: skip
    lines.extend(
        f"  {server:18} {rate[server]:9,.0f} req/s  p99 {p99[server]:7.2f} ms  "
        f"failed {failed[server]}"
        for server in servers
    )
    results: list[Result] = []
    if missing:
        lines.append(f"  uvicorn baselines skipped: pip install {' '.join(missing)}")
        results.append(Result("asgi_node_rps", rate["node"], "requests/s", "none", 0.0, 0.0))
        return results, "\n".join(lines)
    base = "uvicorn-httptools"
    results.append(
        Result("asgi_node_rps", rate["node"], "requests/s", base, rate[base],
               rate["node"] / rate[base], ("target >= 0.8",))
    )  # fmt: skip
    results.append(
        Result("asgi_node_p99", p99["node"], "ms", base, p99[base], p99["node"] / p99[base],
               ("target <= 1.5",))
    )  # fmt: skip
    results.append(
        Result("asgi_node_rps_vs_h11", rate["node"], "requests/s", "uvicorn-h11",
               rate["uvicorn-h11"], rate["node"] / rate["uvicorn-h11"])
    )  # fmt: skip
    lines.append(
        f"  node / uvicorn-httptools: {rate['node'] / rate[base]:.2f}x rate (target 0.8), "
        f"{p99['node'] / p99[base]:.2f}x p99 (target <= 1.5); node / uvicorn-h11: "
        f"{rate['node'] / rate['uvicorn-h11']:.2f}x rate"
    )
    return results, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s phases, 3 repeats")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive clients")
    parser.add_argument("--serve-node", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve_node:
        from server import kernel  # only the serving subprocess needs them
        from server.net import asgi_server

        async def serve() -> None:
            await asgi_server.start_link(HOST, options.port, asgi_server.AsgiConfig(app=APP))
            await kernel.receive(lambda m: False)

        kernel.run(serve)
        return 0
    config = Config.load(quick=options.quick, connections=options.connections)
    results, text = anyio.run(bench, config, backend="asyncio")
    emit(results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
