"""Benchmarks of the process runtime, each against a baseline measured in the same run.

What is measured (every measurement on a fresh node, after a warm-up):

- ``pingpong``: round trips/s of send + receive between two kernel processes, against two
  bare asyncio tasks that resolve each other's futures (the event loop's own limit).
- ``call``: ``gen_server.call`` round trips/s against a trivial server; same baseline.
- ``cast``: casts/s handled (N casts, then one call to sync); same baseline.
- ``spawn``: processes/s spawned and parked in ``receive``, against ``loop.create_task`` of
  a coroutine awaiting a future.
- ``process_memory``: bytes per idle process (tracemalloc delta / N), against a bare task
  awaiting a future; ``process_memory_gen_server`` is the same for an idle gen_server.
- ``restart_latency``: median ms from ``kernel.exit(child, "kill")`` to the supervisor's
  replacement child serving (it notifies from ``handle_continue``), against one
  ``gen_server.call`` round trip on the same node; ``restart_latency_crash`` is the same
  for a child that crashes with an exception. Both with logging off (the CLI's logging
  set-up at level CRITICAL: the reports, written at ERROR, are not made) and, as
  ``..._logged``, with the CLI's logging at INFO writing to a file (a crash writes the
  gen_server's report, the crash report with its traceback, and the supervisor's report).
  With ``erl`` on PATH, OTP's medians for the same supervisor and child (logger off, and
  the default logger writing to a file) are printed next to them.
- ``spawn`` also runs with the cyclic GC disabled, to name the GC's share of a spawn.

Throughputs are the median of several repeats, each kernel repeat run right after a repeat
of its baseline, so that a slow or fast spell of a shared machine falls on both sides (a
best-of would keep the luckiest baseline spike and understate the ratio). The cyclic GC
stays on, as in a server: a heap collected before each timed run, then whatever the run
allocates is collected as it would be in production. Latencies are the median of all
samples. Run from the repository root::

    .venv/bin/python bench/runtime.py --quick     # under a minute
    .venv/bin/python bench/runtime.py             # full run, a few minutes
    .venv/bin/python bench/runtime.py --only call

One JSON object per line on stdout; a human summary on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from server import kernel
from server.behaviours import gen_server, supervisor
from server.cli._logging import configure_logging
from server.kernel import Node, Pid

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
ECHO = "bench._callbacks.echo"
ONE_WORKER = "bench._callbacks.one_worker"
LISTENER = "bench_listener"
BARE_PINGPONG = "bare asyncio ping-pong (2 tasks, fresh future per receive), round trips/s"


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one run."""

    quick: bool
    repeats: int
    pingpong_n: int
    call_n: int
    cast_n: int
    spawn_n: int
    memory_n: int
    memory_gen_server_n: int
    restarts: int
    restart_warmup: int
    restarts_per_supervisor: int


QUICK = Config(
    quick=True,
    repeats=7,
    pingpong_n=30_000,
    call_n=20_000,
    cast_n=50_000,
    spawn_n=20_000,
    memory_n=100_000,
    memory_gen_server_n=10_000,
    restarts=500,
    restart_warmup=50,
    restarts_per_supervisor=50,
)
FULL = Config(
    quick=False,
    repeats=9,
    pingpong_n=200_000,
    call_n=100_000,
    cast_n=300_000,
    spawn_n=100_000,
    memory_n=100_000,
    memory_gen_server_n=100_000,
    restarts=5_000,
    restart_warmup=200,
    restarts_per_supervisor=50,
)


@dataclass(frozen=True, slots=True)
class Result:
    """One JSON line, plus notes for the human summary."""

    bench: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float
    notes: tuple[str, ...] = field(default=())

    def json(self) -> str:
        return json.dumps(
            {
                "bench": self.bench,
                "value": _round(self.value),
                "unit": self.unit,
                "baseline": self.baseline,
                "baseline_value": _round(self.baseline_value),
                "ratio": _round(self.ratio),
            }
        )


def emit(results: list[Result], text: str) -> None:
    """Each result as a JSON line on stdout, then the human summary on stderr."""
    for result in results:
        print(result.json(), flush=True)
    print(text, file=sys.stderr)


def _round(value: float) -> float:
    return float(f"{value:.6g}")


# -- running ---------------------------------------------------------------------------------


def on_node(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``main(*args)`` as the first process of a fresh node, on a fresh event loop."""

    async def boot() -> T:
        async with Node(name="bench", shutdown_timeout=300.0) as node:
            return await node.run_process(main, *args)

    return anyio.run(boot, backend="asyncio")


def bare(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``main(*args)`` on a fresh event loop, no node."""
    return anyio.run(main, *args, backend="asyncio")


def paired(
    repeats: int, measure: Callable[[], float], baseline: Callable[[], float]
) -> tuple[float, list[float], float, list[float]]:
    """Median rates of ``measure`` and ``baseline``, run alternately, and their samples."""
    samples: list[float] = []
    base_samples: list[float] = []
    for _ in range(repeats):
        base_samples.append(baseline())
        samples.append(measure())
    return statistics.median(samples), samples, statistics.median(base_samples), base_samples


def _spread(samples: list[float]) -> str:
    return f"repeats {min(samples):,.0f}..{max(samples):,.0f}"


def without_gc(run: Callable[[], T]) -> T:
    """``run()`` with the cyclic garbage collector disabled (then enabled again)."""
    gc.disable()
    try:
        return run()
    finally:
        gc.enable()


def _bare_pingpong_rate(config: Config) -> float:
    return bare(_bare_pingpong, config.pingpong_n, 2_000)


# -- bare asyncio baselines --------------------------------------------------------------------


class _Slot:
    """Where a bare task parks the future its peer resolves."""

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: asyncio.Future[object] | None = None


async def _bare_echo(loop: asyncio.AbstractEventLoop, mine: _Slot, peer: _Slot) -> None:
    while True:
        waiter: asyncio.Future[object] = loop.create_future()
        mine.waiter = waiter
        message = await waiter
        reply_to = peer.waiter
        assert reply_to is not None
        reply_to.set_result(message)


async def _bare_pingpong(n: int, warmup: int) -> float:
    loop = asyncio.get_running_loop()
    mine, peer = _Slot(), _Slot()
    echo = loop.create_task(_bare_echo(loop, peer, mine))
    await asyncio.sleep(0)  # the echo task parks its first future

    async def rounds(count: int) -> None:
        for _ in range(count):
            waiter: asyncio.Future[object] = loop.create_future()
            mine.waiter = waiter
            target = peer.waiter
            assert target is not None
            target.set_result("ping")
            await waiter

    await rounds(warmup)
    gc.collect()
    start = perf_counter()
    await rounds(n)
    elapsed = perf_counter() - start
    echo.cancel()
    return n / elapsed


async def _bare_idle(loop: asyncio.AbstractEventLoop) -> None:
    await loop.create_future()


async def _bare_spawn_rate(n: int, warmup: int) -> float:
    loop = asyncio.get_running_loop()
    create = loop.create_task
    tasks = [create(_bare_idle(loop)) for _ in range(warmup)]
    await asyncio.sleep(0)
    gc.collect()
    start = perf_counter()
    tasks.extend(create(_bare_idle(loop)) for _ in range(n))
    await asyncio.sleep(0)  # every task has run its first step and is parked
    elapsed = perf_counter() - start
    await _cancel_all(tasks)
    return n / elapsed


async def _bare_memory(n: int) -> float:
    loop = asyncio.get_running_loop()
    create = loop.create_task
    tasks = [create(_bare_idle(loop))]
    await asyncio.sleep(0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks.extend(create(_bare_idle(loop)) for _ in range(n))
    await asyncio.sleep(0)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await _cancel_all(tasks)
    return (after - before) / n


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


# -- kernel and behaviour workloads (each runs as the first process of a node) ---------------


async def _echo_back() -> None:
    receive, send = kernel.receive, kernel.send
    while True:
        sender = await receive()
        send(sender, "pong")  # type: ignore[arg-type]


async def _kernel_pingpong(n: int, warmup: int) -> float:
    me = kernel.self()
    peer = kernel.spawn(_echo_back)
    receive, send = kernel.receive, kernel.send

    async def rounds(count: int) -> None:
        for _ in range(count):
            send(peer, me)
            await receive()

    await rounds(warmup)
    gc.collect()
    start = perf_counter()
    await rounds(n)
    return n / (perf_counter() - start)


async def _start_echo() -> Pid:
    server = await gen_server.start(ECHO)
    assert server is not None
    return server


async def _call_rate(n: int, warmup: int) -> float:
    server = await _start_echo()
    call = gen_server.call

    async def rounds(count: int) -> None:
        for _ in range(count):
            await call(server, "ping")

    await rounds(warmup)
    gc.collect()
    start = perf_counter()
    await rounds(n)
    return n / (perf_counter() - start)


async def _cast_rate(n: int, warmup: int) -> float:
    server = await _start_echo()
    cast = gen_server.cast
    for _ in range(warmup):
        cast(server, 1)
    await gen_server.call(server, "count")
    gc.collect()
    start = perf_counter()
    for _ in range(n):
        cast(server, 1)
    handled = await gen_server.call(server, "count")
    elapsed = perf_counter() - start
    assert handled == warmup + n, handled
    return n / elapsed


async def _idle() -> None:
    await kernel.receive()


def _parked(pid: Pid) -> bool:
    proc = pid._process
    return proc is not None and not proc.is_remote and proc.waiter is not None  # type: ignore[union-attr]


async def _spawn_rate(n: int, warmup: int) -> float:
    spawn = kernel.spawn
    for _ in range(warmup):
        spawn(_idle)
    await asyncio.sleep(0)
    gc.collect()
    start = perf_counter()
    for _ in range(n - 1):
        spawn(_idle)
    last = spawn(_idle)
    await asyncio.sleep(0)  # every process has run its first step and is parked in receive
    elapsed = perf_counter() - start
    assert _parked(last)
    return n / elapsed


async def _process_memory(n: int) -> float:
    spawn = kernel.spawn
    spawn(_idle)
    await asyncio.sleep(0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n - 1):
        spawn(_idle)
    last = spawn(_idle)
    await asyncio.sleep(0)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert _parked(last)
    return (after - before) / n


async def _gen_server_memory(n: int) -> float:
    await _start_echo()  # imports the module, warms the start path
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n - 1):
        await _start_echo()
    last = await _start_echo()
    await asyncio.sleep(0)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert _parked(last)
    return (after - before) / n


@dataclass(slots=True)
class _Restarts:
    samples: list[float]
    call_seconds: float


def _is_up(message: object) -> bool:
    return type(message) is tuple and message[0] == "up"


async def _up() -> Pid:
    message = await kernel.receive(_is_up)
    assert type(message) is tuple
    pid: Pid = message[1]
    return pid


async def _restart_latencies(
    count: int, warmup: int, per_supervisor: int, crash: bool, calls: int
) -> _Restarts:
    """Kill (or crash) the supervised child over and over; time each replacement."""
    kernel.register(LISTENER, kernel.self())
    samples: list[float] = []
    total = warmup + count
    child: Pid | None = None
    while len(samples) < total:
        # a fresh supervisor every `per_supervisor` restarts keeps its restart window short
        sup = await supervisor.start_link(ONE_WORKER, (LISTENER, per_supervisor))
        assert sup is not None
        kernel.unlink(sup)
        child = await _up()
        for _ in range(min(per_supervisor, total - len(samples))):
            start = perf_counter()
            if crash:
                gen_server.cast(child, "crash")
            else:
                kernel.exit(child, "kill")
            child = await _up()
            samples.append(perf_counter() - start)
        if len(samples) < total:
            await gen_server.stop(sup)
    assert child is not None
    call = gen_server.call
    for _ in range(calls // 10):
        await call(child, "ping")
    start = perf_counter()
    for _ in range(calls):
        await call(child, "ping")
    call_seconds = (perf_counter() - start) / calls
    return _Restarts(samples[warmup:], call_seconds)


@contextlib.contextmanager
def cli_logging(level: str) -> Iterator[Path]:
    """The ``server`` command's logging set-up at ``level``, writing to a temporary file."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "node.log"
        configure_logging(level, log_file=str(path))
        try:
            yield path
        finally:
            for handler in root.handlers:
                handler.close()
            root.handlers[:], root.level = saved


# -- the benches -------------------------------------------------------------------------------


def bench_pingpong(config: Config) -> list[Result]:
    value, samples, base, base_samples = paired(
        config.repeats,
        lambda: on_node(_kernel_pingpong, config.pingpong_n, 2_000),
        lambda: _bare_pingpong_rate(config),
    )
    return [
        Result(
            "pingpong",
            value,
            "round trips/s",
            BARE_PINGPONG,
            base,
            value / base,
            (f"kernel {_spread(samples)}; bare {_spread(base_samples)}",),
        )
    ]


def bench_call(config: Config) -> list[Result]:
    value, samples, base, base_samples = paired(
        config.repeats,
        lambda: on_node(_call_rate, config.call_n, 2_000),
        lambda: _bare_pingpong_rate(config),
    )
    return [
        Result(
            "call",
            value,
            "calls/s",
            BARE_PINGPONG,
            base,
            value / base,
            (
                f"{1e6 / value:.2f} us per call; kernel {_spread(samples)}; "
                f"bare {_spread(base_samples)}",
            ),
        )
    ]


def bench_cast(config: Config) -> list[Result]:
    value, samples, base, base_samples = paired(
        config.repeats,
        lambda: on_node(_cast_rate, config.cast_n, 5_000),
        lambda: _bare_pingpong_rate(config),
    )
    return [
        Result(
            "cast",
            value,
            "casts/s",
            BARE_PINGPONG + " (a ping-pong figure: casts are one-way)",
            base,
            value / base,
            (
                f"{1e6 / value:.2f} us per cast, send and handle; kernel {_spread(samples)}; "
                f"bare {_spread(base_samples)}",
            ),
        )
    ]


def bench_spawn(config: Config) -> list[Result]:
    n, warmup = config.spawn_n, 1_000
    value, samples, base, base_samples = paired(
        config.repeats,
        lambda: on_node(_spawn_rate, n, warmup),
        lambda: bare(_bare_spawn_rate, n, warmup),
    )
    spread = f"kernel {_spread(samples)}; bare {_spread(base_samples)}"
    # the cyclic GC's share: the same runs with it disabled (its policy is another matter)
    off, _, base_off, _ = paired(
        config.repeats,
        lambda: without_gc(lambda: on_node(_spawn_rate, n, warmup)),
        lambda: without_gc(lambda: bare(_bare_spawn_rate, n, warmup)),
    )
    gc_share = (
        f"with the cyclic GC disabled: {off:,.0f} processes/s vs bare {base_off:,.0f} "
        f"(ratio {off / base_off:.3f}); the GC's share of a spawn: {1 - value / off:.0%} "
        f"(bare asyncio: {1 - base / base_off:.0%})"
    )
    return [
        Result(
            "spawn",
            value,
            "processes/s",
            "bare asyncio loop.create_task of a coroutine awaiting a future, tasks/s",
            base,
            value / base,
            (
                f"N={n:,}, until all are parked; {1e6 / value:.2f} us per spawn "
                f"vs {1e6 / base:.2f} us per bare task",
                spread,
                gc_share,
            ),
        )
    ]


def bench_process_memory(config: Config) -> list[Result]:
    n = config.memory_n
    base = bare(_bare_memory, n)
    value = on_node(_process_memory, n)
    gs_n = config.memory_gen_server_n
    gs_value = on_node(_gen_server_memory, gs_n)
    baseline = "bare asyncio task awaiting a future, bytes/task (tracemalloc)"
    return [
        Result(
            "process_memory",
            value,
            "bytes/process",
            baseline,
            base,
            value / base,
            (f"N={n:,} idle processes parked in receive",),
        ),
        Result(
            "process_memory_gen_server",
            gs_value,
            "bytes/process",
            baseline,
            base,
            gs_value / base,
            (f"N={gs_n:,} idle gen_servers (echo), started with gen_server.start",),
        ),
    ]


#: OTP's side of the restart latency: the same supervisor (one_for_one over one gen_server
#: that says it is up from handle_continue), killed or crashed over and over, the default
#: logger's handler writing to a file (on) or the primary level ``none`` (off)
ERLANG_RESTART_BENCH = """\
-module(restart_bench).
-behaviour(gen_server).
-export([main/1, start_link/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_continue/2, handle_info/2]).

main(Args) ->
    [Count, Warmup, PerSup] = [list_to_integer(A) || A <- Args],
    Modes = [{kill, off}, {kill, on}, {crash, off}, {crash, on}],
    Log = filename:join(filename:dirname(code:which(?MODULE)), "otp.log"),
    logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h, #{config => #{type => {file, Log}}}),
    register(bench_listener, self()),
    [begin
         Level = case Logging of off -> none; on -> notice end,
         logger:set_primary_config(level, Level),
         Samples = run(Kind, Count + Warmup, PerSup, []),
         Sorted = lists:sort(lists:nthtail(Warmup, lists:reverse(Samples))),
         Median = lists:nth(length(Sorted) div 2 + 1, Sorted),
         io:format("~s ~s ~.3f~n", [Kind, Logging, Median / 1000])
     end || {Kind, Logging} <- Modes],
    io:format("release ~s~n", [erlang:system_info(otp_release)]),
    halt(0).

run(_Kind, 0, _PerSup, Acc) -> Acc;
run(Kind, Left, PerSup, Acc) ->
    {ok, Sup} = supervisor:start_link(restart_bench_sup, PerSup),
    unlink(Sup),
    Child = up(),
    N = min(PerSup, Left),
    {Acc2, _} = lists:foldl(
        fun(_, {A, C}) ->
            T0 = erlang:monotonic_time(nanosecond),
            case Kind of crash -> gen_server:cast(C, crash); kill -> exit(C, kill) end,
            New = up(),
            {[erlang:monotonic_time(nanosecond) - T0 | A], New}
        end, {Acc, Child}, lists:seq(1, N)),
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, _, _, _} -> ok end,
    run(Kind, Left - N, PerSup, Acc2).

up() -> receive {up, Pid} -> Pid end.

start_link(Listener) -> gen_server:start_link(?MODULE, Listener, []).
init(Listener) -> {ok, Listener, {continue, up}}.
handle_continue(up, Listener) -> Listener ! {up, self()}, {noreply, Listener}.
handle_call(Request, _From, State) -> {reply, Request, State}.
handle_cast(crash, _State) -> erlang:error(crash_requested_by_the_benchmark);
handle_cast(_, State) -> {noreply, State}.
handle_info(_, State) -> {noreply, State}.
"""

ERLANG_RESTART_SUP = """\
-module(restart_bench_sup).
-behaviour(supervisor).
-export([init/1]).
init(Intensity) ->
    {ok, {#{strategy => one_for_one, intensity => Intensity, period => 3600},
          [#{id => worker, start => {restart_bench, start_link, [bench_listener]}}]}}.
"""


def otp_restart_latencies(config: Config) -> dict[Any, float]:
    """OTP's medians in us by ``(kind, logging)``, and ``"release"``; empty without ``erl``."""
    erl, erlc = shutil.which("erl"), shutil.which("erlc")
    if erl is None or erlc is None:
        return {}
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        (tmp / "restart_bench.erl").write_text(ERLANG_RESTART_BENCH)
        (tmp / "restart_bench_sup.erl").write_text(ERLANG_RESTART_SUP)
        sources = [str(tmp / "restart_bench.erl"), str(tmp / "restart_bench_sup.erl")]
        subprocess.run([erlc, "-o", directory, *sources], check=True, timeout=120)
        sizes = (config.restarts, config.restart_warmup, config.restarts_per_supervisor)
        done = subprocess.run(
            [erl, "-noshell", "+S", "2", "-pa", directory, "-run", "restart_bench", "main"]
            + [str(size) for size in sizes],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    found: dict[Any, float] = {}
    for line in done.stdout.splitlines():
        words = line.split()
        if len(words) == 3:
            found[(words[0], words[1])] = float(words[2])
        elif len(words) == 2 and words[0] == "release":
            found["release"] = float(words[1])
    return found


#: (bench name, crash?, the CLI's log level): ``CRITICAL`` is logging off for the reports
#: (all written at ERROR), ``INFO`` is the command's default
RESTART_RUNS = (
    ("restart_latency", False, "CRITICAL"),
    ("restart_latency_logged", False, "INFO"),
    ("restart_latency_crash", True, "CRITICAL"),
    ("restart_latency_crash_logged", True, "INFO"),
)


def bench_restart_latency(config: Config) -> list[Result]:
    otp = otp_restart_latencies(config)
    results = []
    for bench, crash, level in RESTART_RUNS:
        with cli_logging(level) as log:
            run = on_node(
                _restart_latencies,
                config.restarts,
                config.restart_warmup,
                config.restarts_per_supervisor,
                crash,
                5_000,
            )
            text = log.read_text(encoding="utf-8")
        records = sum(1 for line in text.splitlines() if " ERROR " in line)
        total = config.restarts + config.restart_warmup
        ms = sorted(s * 1e3 for s in run.samples)
        median = statistics.median(ms)
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        call_ms = run.call_seconds * 1e3
        how = "gen_server.cast(child, 'crash')" if crash else "kernel.exit(child, 'kill')"
        logging_text = "logging off (level CRITICAL)" if level == "CRITICAL" else "CLI logging"
        notes = [
            f"from {how} to the replacement serving, {logging_text}: median "
            f"{median * 1e3:.1f} us, p99 {p99 * 1e3:.1f} us, max {ms[-1] * 1e3:.1f} us "
            f"over {len(ms):,} restarts",
            f"{records / total:.1f} ERROR records logged per restart "
            f"({len(text) / total:,.0f} chars written to the log file)",
        ]
        mode = ("crash" if crash else "kill", "off" if level == "CRITICAL" else "on")
        if mode in otp:
            otp_us = otp[mode]
            notes.append(
                f"OTP {otp['release']:.0f} in the same run: median {otp_us:.1f} us "
                f"({'logger off' if mode[1] == 'off' else 'default logger to a file'}); "
                f"this is {median * 1e3 / otp_us:.1f}x that"
            )
        results.append(
            Result(
                bench,
                median,
                "ms (median)",
                "one gen_server.call round trip on the same node, ms",
                call_ms,
                median / call_ms,
                tuple(notes),
            )
        )
    return results


BENCHES: dict[str, Callable[[Config], list[Result]]] = {
    "pingpong": bench_pingpong,
    "call": bench_call,
    "cast": bench_cast,
    "spawn": bench_spawn,
    "process_memory": bench_process_memory,
    "restart_latency": bench_restart_latency,
}

#: name -> (passes?, what the target is)
TARGETS: dict[str, tuple[Callable[[Result], bool], str]] = {
    "call": (lambda r: r.ratio >= 0.6, "ratio >= 0.6"),
    "spawn": (lambda r: r.ratio >= 0.7, "ratio >= 0.7"),
    "process_memory": (lambda r: r.value < 4096, "< 4096 B"),
    "process_memory_gen_server": (lambda r: r.value < 4096, "< 4096 B"),
    "restart_latency": (lambda r: r.value < 0.5, "median < 0.5 ms"),
    "restart_latency_crash": (lambda r: r.value <= 0.080, "median <= 80 us"),
    "restart_latency_crash_logged": (lambda r: r.value <= 0.150, "median <= 150 us"),
}


# -- output ------------------------------------------------------------------------------------


def summary(config: Config, results: list[Result], timings: dict[str, float]) -> str:
    """A table of the results with targets, then the notes."""
    title = (
        f"runtime benchmark ({'quick' if config.quick else 'full'}): "
        f"Python {platform.python_version()}, anyio {metadata.version('anyio')}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    return render_table(title, results, timings, TARGETS)


def render_table(
    title: str,
    results: list[Result],
    timings: dict[str, float],
    targets: dict[str, tuple[Callable[[Result], bool], str]],
) -> str:
    """The human summary every benchmark prints: a table with targets, then the notes."""
    lines = [
        title,
        f"{'bench':<27} {'value':>14} {'unit':<15} {'baseline':>14} {'ratio':>8}  target",
    ]
    for r in results:
        target = ""
        if r.bench in targets:
            passes, text = targets[r.bench]
            target = f"{text}: {'ok' if passes(r) else 'MISSED'}"
        lines.append(
            f"{r.bench:<27} {_fmt(r.value):>14} {r.unit:<15} {_fmt(r.baseline_value):>14} "
            f"{r.ratio:>8.3f}  {target}"
        )
    lines.append("")
    for r in results:
        lines.append(f"{r.bench}: baseline = {r.baseline}")
        lines.extend(f"  {note}" for note in r.notes)
    lines.append("")
    lines.append(
        "wall time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    )
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--only", choices=list(BENCHES), help="run this bench only")
    options = parser.parse_args(argv)
    if str(ROOT) not in sys.path:  # the callback modules are resolved as bench._callbacks.*
        sys.path.insert(0, str(ROOT))
    config = QUICK if options.quick else FULL
    names = [options.only] if options.only else list(BENCHES)
    results: list[Result] = []
    timings: dict[str, float] = {}
    for name in names:
        started = time.monotonic()
        for result in BENCHES[name](config):
            print(result.json(), flush=True)
            results.append(result)
        timings[name] = time.monotonic() - started
    print(summary(config, results, timings), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
