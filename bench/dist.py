"""Benchmark of the distribution: remote calls and messages between Python and Erlang nodes.

Four nodes on loopback, all registered with an EPMD of the run's own (a child process on a
free port, stopped by its pid), every one stopped by its pid at the end:

- ``pya@localhost``: this process, distributed in-process (the callers of Python's side).
- ``pyb@localhost``: a second Python node, an OS process (this script with ``--serve``),
  running the echo gen_server of ``bench/runtime.py`` (``bench._callbacks.echo``) as
  ``echo`` and a message sink as ``sink``.
- ``e1@localhost`` and ``e2@localhost``: two real ``erl`` nodes, each loading the small
  module ``dist_bench`` (its source is below, compiled with ``erlc`` into a temporary
  directory): ``e1`` runs the same two servers, ``e2`` times calls and sends in Erlang
  with ``erlang:monotonic_time``.

What is measured (each figure the median of several repeats; the repeats of all figures
are interleaved, so a slow spell of a shared machine falls on every side):

- ``call_<from>_<to>_c<k>``: remote ``gen_server.call`` round trips/s with ``k`` = 1 and 32
  concurrent callers, for Python -> Python, Python -> Erlang, Erlang -> Python and
  Erlang -> Erlang. Baseline: Erlang -> Erlang with as many callers; for Erlang -> Erlang
  itself, Erlang's local ``gen_server:call`` (in ``e1``) with as many callers.
- ``send_<from>_<to>_<size>``: one-way messages/s (and MB/s in the notes) of 1 KB and 1 MB
  binaries to a sink process on the other node, ending with a sync (the sink answers how
  many it has taken, which must be all); Python -> Python and Erlang -> Erlang. The Python
  sender waits while the connection is busy (``busy_limit``), as Erlang suspends a sender
  on a busy distribution port. Baseline: Erlang -> Erlang; for Erlang -> Erlang itself, the
  same sends to a sink in the same Erlang node.
- ``local_call``: ``bench/runtime.py``'s local ``gen_server.call`` figure (its own bare
  asyncio baseline), so a reader sees the local path did not get slower.

The target: Python -> Python calls at least half of Erlang -> Erlang's rate in the same
run (the ratio of the ``call_py_py_*`` rows). Last, a profile: cProfile's top 15 functions
by own time over a run of Python -> Python calls with one caller (this process: the
caller, the connection's reader and writer, the event loop). Run from the repository
root::

    .venv/bin/python bench/dist.py --quick     # under a minute
    .venv/bin/python bench/dist.py             # full run, a few minutes
    .venv/bin/python bench/dist.py --json      # one JSON object per line on stdout

The table goes to stdout (to stderr with ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* and tests.* are imported from the root
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
from anyio.streams.buffered import BufferedByteReceiveStream  # noqa: E402

from bench import runtime  # noqa: E402
from bench.runtime import Result, render_table  # noqa: E402
from server import dist, kernel  # noqa: E402
from server.behaviours import gen_server  # noqa: E402
from server.dist import Atom  # noqa: E402
from server.kernel import Node, Pid  # noqa: E402
from server.spec import DistSettings  # noqa: E402
from tests._support.erl_nodes import _stop, otp_release, running_epmd  # noqa: E402
from tests._support.erl_shell import ErlShell, running_erl_shell  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import Process

    from server.dist._connection import Connection
    from tests._support.erl_nodes import Epmd

COOKIE = "dist-bench-cookie"
PYA, PYB, E1, E2 = "pya@localhost", "pyb@localhost", "e1@localhost", "e2@localhost"
ECHO = "bench._callbacks.echo"
PING = Atom("ping")
KB, MB = 1024, 1024 * 1024
SIZES = {"1k": KB, "1m": MB}
WARMUP = 200  # calls before each timed run
STEP = 120.0  # the longest any one measurement may take, s

ERLANG_MODULE = r"""
-module(dist_bench).
-behaviour(gen_server).
-export([start_servers/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([call_rate/4, send_rate/4, sink/0]).

%% The echo gen_server (answers a call with its request) and the sink, both registered.
start_servers() ->
    {ok, _} = gen_server:start({local, echo}, ?MODULE, [], []),
    register(sink, spawn(fun sink/0)),
    ok.

init([]) -> {ok, 0}.
handle_call(Request, _From, State) -> {reply, Request, State}.
handle_cast(_Request, State) -> {noreply, State + 1}.
handle_info(_Message, State) -> {noreply, State}.

%% Counts the binaries it takes; {sync, From} answers {synced, Count, Bytes} and resets.
sink() -> sink(0, 0).
sink(N, B) ->
    receive
        {sync, From} -> From ! {synced, N, B}, sink(0, 0);
        {whoami, From} -> From ! {pid, self()}, sink(N, B);
        Bin when is_binary(Bin) -> sink(N + 1, B + byte_size(Bin))
    end.

%% Calls/s of gen_server:call(Target, ping) made by Concurrency processes, N in all.
call_rate(Target, N, Concurrency, Warmup) ->
    callers(Target, Warmup, 1),
    Per = N div Concurrency,
    T0 = erlang:monotonic_time(),
    callers(Target, Per, Concurrency),
    T1 = erlang:monotonic_time(),
    Per * Concurrency / seconds(T1 - T0).

callers(Target, Per, Concurrency) ->
    Self = self(),
    Pids = [spawn_link(fun() -> calls(Target, Per), Self ! {done, self()} end)
            || _ <- lists:seq(1, Concurrency)],
    [receive {done, P} -> ok end || P <- Pids],
    ok.

calls(_Target, 0) -> ok;
calls(Target, K) -> ping = gen_server:call(Target, ping), calls(Target, K - 1).

%% [messages/s, bytes/s] of N binaries of Size bytes sent to the sink of Node, then a sync.
send_rate(Node, N, Size, Warmup) ->
    {sink, Node} ! {whoami, self()},
    Sink = receive {pid, P} -> P after 10000 -> exit(no_sink) end,
    Bin = binary:copy(list_to_binary(lists:seq(0, 255)), Size div 256),
    sends(Sink, Bin, Warmup),
    {synced, Warmup, _} = sync(Sink),
    T0 = erlang:monotonic_time(),
    sends(Sink, Bin, N),
    {synced, N, Bytes} = sync(Sink),
    T1 = erlang:monotonic_time(),
    Seconds = seconds(T1 - T0),
    [N / Seconds, Bytes / Seconds].

sends(_Sink, _Bin, 0) -> ok;
sends(Sink, Bin, K) -> Sink ! Bin, sends(Sink, Bin, K - 1).

sync(Sink) ->
    Sink ! {sync, self()},
    receive {synced, _, _} = Answer -> Answer end.

seconds(Native) -> erlang:convert_time_unit(Native, native, nanosecond) / 1.0e9.
"""


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one run."""

    quick: bool
    repeats: int
    calls: dict[int, int]  # concurrency -> calls per repeat
    sends: dict[str, int]  # size name -> messages per repeat
    profile_calls: int
    local_repeats: int


QUICK = Config(
    quick=True,
    repeats=3,
    calls={1: 1_500, 32: 4_000},
    sends={"1k": 5_000, "1m": 30},
    profile_calls=2_000,
    local_repeats=3,
)
FULL = Config(
    quick=False,
    repeats=5,
    calls={1: 10_000, 32: 20_000},
    sends={"1k": 40_000, "1m": 200},
    profile_calls=10_000,
    local_repeats=7,
)


# -- the second Python node (this script with --serve) -------------------------------------


def _settings(name: str, epmd_port: int) -> DistSettings:
    return DistSettings.model_validate(
        {
            "name": name,
            "cookie": COOKIE,
            "epmd_port": epmd_port,
            "start_epmd": False,
            "net_ticktime": 60.0,
        }
    )


@asynccontextmanager
async def distributed(name: str, epmd_port: int) -> AsyncIterator[None]:
    """This node distributed as ``name`` (inside a process); stopped at the end."""
    sup = await dist.start_link(_settings(name, epmd_port))
    try:
        yield
    finally:
        ref = kernel.monitor(sup)
        kernel.unlink(sup)
        kernel.exit(sup, kernel.SHUTDOWN)
        await kernel.receive(lambda m: getattr(m, "ref", None) is ref, timeout=30)


async def _sink() -> None:
    """Counts the binaries it takes; ``("sync", From)`` answers ``("synced", n, bytes)``."""
    receive, send = kernel.receive, kernel.send
    count = size = 0
    while True:
        message = await receive()
        if type(message) is bytes:
            count += 1
            size += len(message)
        elif type(message) is tuple and message[0] == "sync":
            send(message[1], ("synced", count, size))
            count = size = 0
        elif type(message) is tuple and message[0] == "whoami":
            send(message[1], ("pid", kernel.self()))


async def _serve(name: str, epmd_port: int) -> None:
    async with distributed(name, epmd_port):
        server = await gen_server.start(ECHO, name="echo")
        assert server is not None
        kernel.register("sink", kernel.spawn(_sink))
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the bench closes our stdin


def serve(name: str, epmd_port: int) -> int:
    """The ``--serve`` mode: a Python node with ``echo`` and ``sink``, until stdin ends."""

    async def boot() -> None:
        async with Node(name="bench_peer") as node:
            await node.run_process(_serve, name, epmd_port)

    anyio.run(boot, backend="asyncio")
    return 0


@asynccontextmanager
async def python_peer(name: str, epmd: Epmd) -> AsyncIterator[Process]:
    """``bench/dist.py --serve`` as an OS process, ready; stopped by its pid at the end."""
    command = [sys.executable, str(SCRIPT), "--serve", name]
    command += ["--epmd-port", str(epmd.port)]
    process = await anyio.open_process(command, cwd=ROOT, stderr=None)
    try:
        assert process.stdout is not None
        reader = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(30):
            while (await reader.receive_until(b"\n", 65536)).strip() != b"ready":
                pass
        yield process
    finally:
        if process.stdin is not None:
            await process.stdin.aclose()
        await _stop(process)


# -- the Python side's measurements (in a process of this node) ----------------------------


async def _calls(target: tuple[str, str], count: int) -> None:
    call = gen_server.call
    for _ in range(count):
        answer = await call(target, PING)
    assert answer == PING, answer


async def _caller(parent: Pid, target: tuple[str, str], count: int) -> None:
    await _calls(target, count)
    kernel.send(parent, ("done", kernel.self()))


async def py_call_rate(target: tuple[str, str], n: int, concurrency: int) -> float:
    """Calls/s of ``gen_server.call(target, ping)`` by ``concurrency`` processes, ``n`` in all."""
    await _calls(target, WARMUP)
    per = n // concurrency
    me = kernel.self()
    start = perf_counter()
    if concurrency == 1:
        await _calls(target, per)
    else:
        pids = {kernel.spawn(_caller, me, target, per) for _ in range(concurrency)}
        while pids:
            message = await kernel.receive(
                lambda m: type(m) is tuple and m[0] == "done", timeout=STEP
            )
            pids.discard(message[1])  # type: ignore[index]
    return per * concurrency / (perf_counter() - start)


async def _sync(sink: Pid) -> tuple[int, int]:
    kernel.send(sink, ("sync", kernel.self()))
    answer = await kernel.receive(lambda m: type(m) is tuple and m[0] == "synced", timeout=STEP)
    assert type(answer) is tuple
    return answer[1], answer[2]


async def _sends(sink: Pid, connection: Connection, payload: bytes, count: int) -> None:
    send = kernel.send
    for _ in range(count):
        send(sink, payload)
        if connection.busy:  # as erl suspends a sender on a busy distribution port
            await connection.drained()


async def py_send_rate(node: str, n: int, size: int) -> tuple[float, float]:
    """(messages/s, bytes/s) of ``n`` binaries of ``size`` bytes to ``node``'s sink, synced."""
    me = kernel.self()
    kernel.send(("sink", node), ("whoami", me))
    answer = await kernel.receive(lambda m: type(m) is tuple and m[0] == "pid", timeout=STEP)
    assert type(answer) is tuple
    sink: Pid = answer[1]
    channel = kernel.current_node().remote_node(node).channel
    connection: Connection = channel  # type: ignore[assignment]
    payload = bytes(range(256)) * (size // 256)
    warmup = max(3, n // 10)
    await _sends(sink, connection, payload, warmup)
    assert await _sync(sink) == (warmup, warmup * size)
    start = perf_counter()
    await _sends(sink, connection, payload, n)
    taken = await _sync(sink)
    elapsed = perf_counter() - start
    assert taken == (n, n * size), taken
    return n / elapsed, n * size / elapsed


async def py_profile(target: tuple[str, str], n: int) -> str:
    """cProfile's top 15 by own time over ``n`` calls with one caller, as text."""
    await _calls(target, WARMUP)
    profile = cProfile.Profile()
    profile.enable()
    await _calls(target, n)
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(15)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    total = next((line.strip() for line in lines if "function calls" in line), "")
    return "\n".join([total, *(line.rstrip() for line in lines[start:] if line.strip())])


# -- the Erlang side's measurements (in e2 or e1) ------------------------------------------


async def erl_call_rate(shell: ErlShell, target: str, n: int, concurrency: int) -> float:
    answer = await shell.eval(
        f"dist_bench:call_rate({target}, {n}, {concurrency}, {WARMUP})", limit=STEP
    )
    return float(answer)


async def erl_send_rate(shell: ErlShell, node: str, n: int, size: int) -> tuple[float, float]:
    answer = await shell.eval(
        f"dist_bench:send_rate('{node}', {n}, {size}, {max(3, n // 10)})", limit=STEP
    )
    rate, throughput = json.loads(answer)
    return float(rate), float(throughput)


def compile_erlang(directory: Path) -> None:
    """``dist_bench.erl`` written into ``directory`` and compiled there with ``erlc``."""
    source = directory / "dist_bench.erl"
    source.write_text(ERLANG_MODULE)
    subprocess.run(["erlc", "-o", str(directory), str(source)], check=True, timeout=60)


# -- the run ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Samples:
    """Every repeat's figures by key, and the profile."""

    rates: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    bytes_per_s: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    profile: str = ""

    def add(self, key: str, value: float) -> None:
        self.rates.setdefault(key, []).append(value)

    def add_bytes(self, key: str, value: float) -> None:
        self.bytes_per_s.setdefault(key, []).append(value)


async def _measure_all(config: Config, tmp: Path, samples: Samples) -> None:
    async with AsyncExitStack() as stack:
        epmd = await stack.enter_async_context(running_epmd())
        await stack.enter_async_context(distributed(PYA, epmd.port))
        await stack.enter_async_context(python_peer(PYB, epmd))
        shells = []
        for alive in ("e1", "e2"):
            home = tmp / alive
            home.mkdir()
            shell = await stack.enter_async_context(
                running_erl_shell(
                    alive, epmd=epmd, cookie=COOKIE, home=home, extra_args=["-pa", str(tmp)]
                )
            )
            shells.append(shell)
        e1, e2 = shells
        await e1.eval("dist_bench:start_servers()")
        await e2.eval(f"pong = net_adm:ping('{E1}')")
        await e2.eval(f"pong = net_adm:ping('{PYB}')")
        for node in (PYB, E1):
            assert await dist.ping(node), node
        for _ in range(config.repeats):
            for concurrency, n in config.calls.items():
                c = f"c{concurrency}"
                samples.add(
                    f"call_erl_erl_{c}",
                    await erl_call_rate(e2, f"{{echo, '{E1}'}}", n, concurrency),
                )
                samples.add(f"call_py_py_{c}", await py_call_rate(("echo", PYB), n, concurrency))
                samples.add(f"call_py_erl_{c}", await py_call_rate(("echo", E1), n, concurrency))
                samples.add(
                    f"call_erl_py_{c}",
                    await erl_call_rate(e2, f"{{echo, '{PYB}'}}", n, concurrency),
                )
                samples.add(f"call_erl_local_{c}", await erl_call_rate(e1, "echo", n, concurrency))
            for size_name, n in config.sends.items():
                size = SIZES[size_name]
                for key, measure in (
                    (f"send_erl_erl_{size_name}", erl_send_rate(e2, E1, n, size)),
                    (f"send_py_py_{size_name}", py_send_rate(PYB, n, size)),
                    (f"send_erl_local_{size_name}", erl_send_rate(e1, E1, n, size)),
                ):
                    rate, throughput = await measure
                    samples.add(key, rate)
                    samples.add_bytes(key, throughput)
            samples.add("pingpong_bare_asyncio", await bare_asyncio_rate(config.calls[1] * 2))
        samples.profile = await py_profile(("echo", PYB), config.profile_calls)


_ECHO_SERVER = """
import asyncio, socket, sys
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def bare_asyncio_rate(n: int) -> float:
    """Round trips/s of a bare asyncio protocol ping-pong (100 bytes) with another OS
    process over loopback: what any pure-Python node pays per message round trip."""
    process = await anyio.open_process([sys.executable, "-c", _ECHO_SERVER])
    try:
        assert process.stdout is not None
        port = int((await process.stdout.receive()).split()[0])
        loop = asyncio.get_running_loop()
        done: asyncio.Future[float] = loop.create_future()

        class Client(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.transport = transport
                self.left = n
                self.started = perf_counter()
                self.transport.write(b"x" * 100)  # type: ignore[attr-defined]

            def data_received(self, data: bytes) -> None:
                self.left -= 1
                if self.left == 0:
                    done.set_result(n / (perf_counter() - self.started))
                else:
                    self.transport.write(b"x" * 100)  # type: ignore[attr-defined]

        transport, _ = await loop.create_connection(Client, "127.0.0.1", port)
        try:
            return await done
        finally:
            transport.close()
    finally:
        process.kill()
        await process.wait()


def measure(config: Config) -> Samples:
    """Every figure's samples, from one cluster of four nodes set up for the run."""
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="dist-bench-") as name:
        tmp = Path(name)
        compile_erlang(tmp)

        async def boot() -> None:
            async with Node(name="bench", shutdown_timeout=60.0) as node:
                await node.run_process(_measure_all, config, tmp, samples)

        anyio.run(boot, backend="asyncio")
    return samples


CALL_ROWS = (
    ("call_py_py", "Python -> Python"),
    ("call_py_erl", "Python -> Erlang"),
    ("call_erl_py", "Erlang -> Python"),
)


def results(config: Config, samples: Samples) -> list[Result]:
    """The rows of the table, each with its baseline and the ratio."""
    median = {key: statistics.median(values) for key, values in samples.rates.items()}
    mbs = {key: statistics.median(values) / 1e6 for key, values in samples.bytes_per_s.items()}

    def spread(key: str) -> str:
        values = samples.rates[key]
        return f"repeats {min(values):,.0f}..{max(values):,.0f}"

    rows: list[Result] = []
    for concurrency in config.calls:
        c = f"c{concurrency}"
        erl = median[f"call_erl_erl_{c}"]
        callers = f"{concurrency} caller{'s' if concurrency > 1 else ''}"
        for key, what in CALL_ROWS:
            value = median[f"{key}_{c}"]
            rows.append(
                Result(
                    f"{key}_{c}",
                    value,
                    "calls/s",
                    f"Erlang -> Erlang remote gen_server:call, {callers}, calls/s",
                    erl,
                    value / erl,
                    (f"{what}, {callers}: {1e6 / value:.1f} us per call; {spread(f'{key}_{c}')}",),
                )
            )
        local = median[f"call_erl_local_{c}"]
        rows.append(
            Result(
                f"call_erl_erl_{c}",
                erl,
                "calls/s",
                f"Erlang local gen_server:call in one node, {callers}, calls/s",
                local,
                erl / local,
                (
                    f"Erlang -> Erlang, {callers}: {1e6 / erl:.1f} us per call, timed in erl; "
                    f"{spread(f'call_erl_erl_{c}')}",
                ),
            )
        )
    if "pingpong_bare_asyncio" in median and "call_erl_erl_c1" in median:
        bare, erl = median["pingpong_bare_asyncio"], median["call_erl_erl_c1"]
        rows.append(
            Result(
                "pingpong_bare_asyncio",
                bare,
                "round trips/s",
                "Erlang -> Erlang remote gen_server:call, 1 caller, calls/s",
                erl,
                bare / erl,
                (
                    "bare asyncio protocol ping-pong (100 B) with another OS process over "
                    f"loopback: {1e6 / bare:.1f} us per round trip, the floor of any pure-Python "
                    f"node's remote call; {spread('pingpong_bare_asyncio')}",
                ),
            )
        )
    for size_name in config.sends:
        label = "1 KB" if size_name == "1k" else "1 MB"
        erl_key, py_key, local_key = (
            f"send_erl_erl_{size_name}",
            f"send_py_py_{size_name}",
            f"send_erl_local_{size_name}",
        )
        for key, base_key, what, baseline in (
            (py_key, erl_key, "Python -> Python", "Erlang -> Erlang, same sends"),
            (erl_key, local_key, "Erlang -> Erlang", "Erlang, same sends to a sink in one node"),
        ):
            value, base = median[key], median[base_key]
            rows.append(
                Result(
                    key,
                    value,
                    "messages/s",
                    f"{baseline}, messages/s",
                    base,
                    value / base,
                    (
                        f"{what}, {label} binaries: {mbs[key]:,.1f} MB/s "
                        f"(baseline {mbs[base_key]:,.1f} MB/s); {spread(key)}",
                    ),
                )
            )
    return rows


def local_call(config: Config) -> Result:
    """``bench/runtime.py``'s local ``gen_server.call`` figure, reused."""
    base = runtime.QUICK if config.quick else runtime.FULL
    sizes = dataclasses.replace(base, repeats=config.local_repeats)
    (result,) = runtime.bench_call(sizes)
    return dataclasses.replace(result, bench="local_call")


TARGETS: dict[str, tuple[Callable[[Result], bool], str]] = {
    f"call_py_py_c{k}": (lambda r: r.ratio >= 0.5, "ratio >= 0.5") for k in (1, 32)
}


def summary(config: Config, rows: list[Result], timings: dict[str, float], profile: str) -> str:
    title = (
        f"distribution benchmark ({'quick' if config.quick else 'full'}): "
        f"Python {platform.python_version()}, anyio {metadata.version('anyio')}, "
        f"OTP {otp_release()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"medians of {config.repeats} interleaved repeats"
    )
    lines = [render_table(title, rows, timings, TARGETS), ""]
    for k in config.calls:
        row = next(r for r in rows if r.bench == f"call_py_py_c{k}")
        met = "met" if row.ratio >= 0.5 else "NOT met"
        lines.append(
            f"target, Python -> Python calls >= 0.5 x Erlang -> Erlang, {k} caller(s): "
            f"{row.value:,.0f} / {row.baseline_value:,.0f} = {row.ratio:.3f}: {met}"
        )
    lines += ["", "profile: Python -> Python calls, 1 caller, the caller's node (cProfile):"]
    lines += [f"  {line}" for line in profile.splitlines()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout")
    parser.add_argument("--serve", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--epmd-port", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        return serve(options.serve, options.epmd_port)
    config = QUICK if options.quick else FULL
    timings: dict[str, float] = {}
    started = time.monotonic()
    local = local_call(config)
    timings["local_call"] = time.monotonic() - started
    started = time.monotonic()
    samples = measure(config)
    timings["dist"] = time.monotonic() - started
    rows = [*results(config, samples), local]
    text = summary(config, rows, timings, samples.profile)
    if options.json:
        for row in rows:
            print(row.json(), flush=True)
        print(json.dumps({"bench": "profile", "text": samples.profile}), flush=True)
        print(text, file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
