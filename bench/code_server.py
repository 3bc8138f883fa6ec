"""Benchmarks of the code server, each against a baseline measured in the same run.

What is measured:

- ``load_small`` / ``load_large``: microseconds to load one new version of a small module
  and of a generated module of about 2,000 lines (``load`` then ``soft_purge``; only the
  load is timed), against ``compile`` + ``exec`` of the same text into a bare dict (what
  any loader must pay).
- ``check_process_code``: milliseconds to ask ``check_process_code`` of 10,000 processes
  parked in the old version, against walking their frames (``kernel.process_frames``).
- ``soft_purge_scan``: milliseconds for a ``soft_purge`` that must look at 10,000 processes
  (none in old code), same baseline.
- ``purge``: milliseconds to ``purge`` a module with 10,000 processes in its old code,
  against ``kernel.exit(pid, "kill")`` of 10,000 plain processes and waiting for their ends.
- ``dispatch_resolve``: nanoseconds per message a behaviour spends finding a callback in
  the module's current version (``getattr(resolve(name), fn)`` and the call, minus a direct
  call of a held function), as a fraction of one ``gen_server.call`` round trip on the same
  node (the ratio; target under 0.10).
- ``call_managed``: ``gen_server.call`` round trips/s against a callback module owned by
  the code server, against the same module imported as a plain module.

Run from the repository root::

    .venv/bin/python bench/code_server.py --quick     # under a minute
    .venv/bin/python bench/code_server.py

One JSON object per line on stdout (the format of ``bench/runtime.py``); a summary on stderr.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.runtime is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.runtime import Result, on_node, render_table  # noqa: E402
from server import code_server, kernel  # noqa: E402
from server.behaviours import _dispatch, gen_server  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.kernel import Pid


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one run."""

    quick: bool
    repeats: int
    loads: int
    large_loads: int
    processes: int
    dispatch_n: int
    call_n: int


QUICK = Config(
    quick=True,
    repeats=3,
    loads=300,
    large_loads=20,
    processes=10_000,
    dispatch_n=200_000,
    call_n=20_000,
)
FULL = Config(
    quick=False,
    repeats=5,
    loads=2_000,
    large_loads=100,
    processes=10_000,
    dispatch_n=2_000_000,
    call_n=100_000,
)

SMALL = """
    __vsn__ = "{vsn}"
    LIMIT = 10


    class Counter:
        def __init__(self):
            self.n = 0

        def bump(self):
            self.n += 1
            return self.n


    def double(x):
        return 2 * x
"""

WORKER = """
    from server import kernel

    __vsn__ = "{vsn}"


    async def park(tester):
        kernel.send(tester, "parked")
        while True:  # a local loop: stays in this version
            await kernel.receive()
"""

SERVER = """
    from server.behaviours.gen_server_callbacks import Ok, Reply

    __vsn__ = "{vsn}"


    def init(args):
        return Ok(0)


    def handle_call(request, from_, state):
        return Reply(request, state)
"""


def large_source(vsn: str, lines: int = 2_000) -> str:
    """A generated module of about ``lines`` lines: functions, a class, constants."""
    parts = [f'__vsn__ = "{vsn}"', "TABLE = {"]
    parts += [f"    {i}: 'entry {i}'," for i in range(lines // 10)]
    parts.append("}")
    functions = int((lines - len(parts) - 5) / 8.1)  # 8 lines each, 1 in 10 called by run
    for i in range(functions):
        parts += [
            "",
            "",
            f"def step_{i}(state, delta={i}):",
            f'    """Step {i} of the generated pipeline."""',
            "    if state is None:",
            "        return delta",
            "    total = state + delta",
            f"    return total if total < {i * 7 + 3} else total - {i}",
        ]
    parts += ["", "", "class Pipeline:", "    def run(self, state):"]
    parts += [f"        state = step_{i}(state)" for i in range(0, functions, 10)]
    parts.append("        return state")
    return "\n".join(parts) + "\n"


class App:
    """A throwaway application package ``name`` under a temporary source root."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.name = f"bench_app_{uuid.uuid4().hex[:8]}"
        (self.root / self.name).mkdir()
        (self.root / self.name / "__init__.py").write_text("")
        code_server.add_path(self.root)

    def module(self, module: str, source: str) -> str:
        """Write and import ``module``; returns its dotted name."""
        (self.root / self.name / f"{module}.py").write_text(source)
        dotted = f"{self.name}.{module}"
        importlib.import_module(dotted)
        return dotted

    def close(self) -> None:
        code_server.remove_path(self.root)
        self.tmp.cleanup()


def _source(template: str, vsn: str) -> str:
    return textwrap.dedent(template).format(vsn=vsn)


# -- loading -------------------------------------------------------------------------------


def _load_seconds(name: str, sources: list[str]) -> float:
    """Median seconds of one load (each followed, untimed, by a soft purge)."""
    samples = []
    for text in sources:
        start = perf_counter()
        code_server.load(name, text)
        samples.append(perf_counter() - start)
        assert code_server.soft_purge(name)
    return statistics.median(samples)


def _bare_load_seconds(name: str, sources: list[str]) -> float:
    samples = []
    for text in sources:
        start = perf_counter()
        namespace: dict[str, Any] = {"__name__": name}
        exec(compile(text, f"<{name}>", "exec", dont_inherit=True), namespace)
        samples.append(perf_counter() - start)
    return statistics.median(samples)


def _bench_load(bench: str, make: Callable[[str], str], count: int, note: str) -> Result:
    app = App()
    try:
        name = app.module("mod", make("v0"))
        sources = [make(f"v{i}") for i in range(1, count + 1)]
        _load_seconds(name, sources[: max(count // 10, 2)])  # warm up
        value = _load_seconds(name, sources)
        baseline = _bare_load_seconds(name, sources)
    finally:
        app.close()
    return Result(
        bench=bench,
        value=value * 1e6,
        unit="us/load",
        baseline="compile + exec of the same text into a dict, us",
        baseline_value=baseline * 1e6,
        ratio=value / baseline,
        notes=(f"{note}; median of {count} loads",),
    )


def bench_load(config: Config) -> list[Result]:
    lines = large_source("v").count("\n")
    return [
        _bench_load(
            "load_small",
            lambda vsn: _source(SMALL, vsn),
            config.loads,
            f"{_source(SMALL, 'v').count(chr(10))} lines",
        ),
        _bench_load("load_large", large_source, config.large_loads, f"{lines} lines"),
    ]


# -- old code: check, soft purge, purge ------------------------------------------------------


async def _park_many(worker: Callable[..., Any], count: int) -> list[Pid]:
    me = kernel.self()
    pids = [kernel.spawn(worker, me) for _ in range(count)]
    for _ in pids:
        await kernel.receive(lambda m: m == "parked")
    return pids


async def _old_code(config: Config) -> dict[str, float]:
    app = App()
    try:
        name = app.module("worker", _source(WORKER, "v1"))
        worker = importlib.import_module(name)
        pids = await _park_many(worker.park, config.processes)
        code_server.load(name, _source(WORKER, "v2"))
        gc.collect()
        walk = check = math.inf
        for _ in range(2):  # the first pass warms the caches of both
            start = perf_counter()
            for pid in pids:
                kernel.process_frames(pid)
            walk = min(walk, perf_counter() - start)
            start = perf_counter()
            in_old = [pid for pid in pids if code_server.check_process_code(pid, name)]
            check = min(check, perf_counter() - start)
            assert len(in_old) == len(pids)
        start = perf_counter()
        assert await code_server.purge(name)
        purge = perf_counter() - start
        assert not any(kernel.is_alive(pid) for pid in pids)

        pids = await _park_many(_plain_park, config.processes)  # in no module version
        code_server.load(name, _source(WORKER, "v3"))  # v2 old, nobody runs it
        gc.collect()
        start = perf_counter()
        assert code_server.soft_purge(name)
        scan = perf_counter() - start
        start = perf_counter()
        for pid in pids:
            kernel.exit(pid, kernel.KILL)
        await kernel.wait_ended(pids)
        kill = perf_counter() - start
    finally:
        app.close()
    return {
        "check": check,
        "walk": walk,
        "purge": purge,
        "scan": scan,
        "kill": kill,
    }


async def _plain_park(tester: Pid) -> None:
    kernel.send(tester, "parked")
    while True:
        await kernel.receive()


def bench_old_code(config: Config) -> list[Result]:
    runs = [on_node(_old_code, config) for _ in range(config.repeats)]

    def best(key: str) -> float:
        return min(run[key] for run in runs) * 1e3

    n = f"{config.processes:,} processes"
    return [
        Result(
            "check_process_code",
            best("check"),
            f"ms/{config.processes}",
            f"kernel.process_frames of the same {n}, ms",
            best("walk"),
            best("check") / best("walk"),
            (f"{n}, each parked in the old version (best of {config.repeats})",),
        ),
        Result(
            "soft_purge_scan",
            best("scan"),
            f"ms/{config.processes}",
            f"kernel.process_frames of {n}, ms",
            best("walk"),
            best("scan") / best("walk"),
            (f"{n}, none in old code: every process of the node is looked at",),
        ),
        Result(
            "purge",
            best("purge"),
            f"ms/{config.processes}",
            f"kernel.exit(pid, 'kill') of {n} + wait_ended, ms",
            best("kill"),
            best("purge") / best("kill"),
            (f"{n} in old code, all killed and waited for, then the version dropped",),
        ),
    ]


# -- dispatch --------------------------------------------------------------------------------


def _dispatch_seconds(name: str, n: int) -> tuple[float, float]:
    """Seconds per callback found through ``resolve``, and per direct call of a held one."""
    resolve = _dispatch.resolve
    held = resolve(name).handle_call
    state = 0
    start = perf_counter()
    for _ in range(n):
        getattr(resolve(name), "handle_call")("ping", None, state)  # noqa: B009 - as the engine
    resolved = (perf_counter() - start) / n
    start = perf_counter()
    for _ in range(n):
        held("ping", None, state)
    direct = (perf_counter() - start) / n
    return resolved, direct


async def _call_rate(module: str, n: int) -> float:
    server = await gen_server.start(module)
    assert server is not None
    call = gen_server.call
    for _ in range(n // 10):
        await call(server, "ping")
    gc.collect()
    start = perf_counter()
    for _ in range(n):
        await call(server, "ping")
    rate = n / (perf_counter() - start)
    await gen_server.stop(server)
    return rate


def bench_dispatch(config: Config) -> list[Result]:
    app = App()
    plain_dir = tempfile.TemporaryDirectory()
    plain_name = f"bench_plain_{uuid.uuid4().hex[:8]}"
    try:
        managed = app.module("server", _source(SERVER, "v1"))
        Path(plain_dir.name, f"{plain_name}.py").write_text(_source(SERVER, "v1"))
        sys.path.insert(0, plain_dir.name)
        importlib.import_module(plain_name)
        samples = [_dispatch_seconds(managed, config.dispatch_n) for _ in range(config.repeats)]
        resolved = min(s[0] for s in samples)
        direct = min(s[1] for s in samples)
        managed_rates, plain_rates = [], []
        for _ in range(config.repeats):  # alternately, so that both see the same machine
            plain_rates.append(on_node(_call_rate, plain_name, config.call_n))
            managed_rates.append(on_node(_call_rate, managed, config.call_n))
        managed_rate = statistics.median(managed_rates)
        plain_rate = statistics.median(plain_rates)
    finally:
        app.close()
        sys.path.remove(plain_dir.name)
        sys.modules.pop(plain_name, None)
        plain_dir.cleanup()
    round_trip = 1e9 / managed_rate
    overhead = max(resolved - direct, 0.0) * 1e9
    return [
        Result(
            "dispatch_resolve",
            overhead,
            "ns/message",
            "one gen_server.call round trip (managed module), ns",
            round_trip,
            overhead / round_trip,
            (
                f"getattr(resolve(name), 'handle_call')(...): {resolved * 1e9:.0f} ns, "
                f"a held function called directly: {direct * 1e9:.0f} ns",
                "target: ratio < 0.10 of a call round trip",
            ),
        ),
        Result(
            "call_managed",
            managed_rate,
            "calls/s",
            "gen_server.call round trips/s, the same module imported plainly",
            plain_rate,
            managed_rate / plain_rate,
            (
                "the callback module owned by the code server vs a plain sys.modules entry; "
                f"medians of {config.repeats} alternate runs",
            ),
        ),
    ]


BENCHES: dict[str, Callable[[Config], list[Result]]] = {
    "load": bench_load,
    "old_code": bench_old_code,
    "dispatch": bench_dispatch,
}

#: name -> (passes?, what the target is)
TARGETS: dict[str, tuple[Callable[[Result], bool], str]] = {
    "dispatch_resolve": (lambda r: r.ratio < 0.10, "ratio < 0.10"),
}


def summary(config: Config, results: list[Result], timings: dict[str, float]) -> str:
    """A table of the results with targets, then the notes."""
    title = f"code server benchmark ({'quick' if config.quick else 'full'})"
    return render_table(title, results, timings, TARGETS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--only", choices=list(BENCHES), help="run this bench only")
    options = parser.parse_args(argv)
    config = QUICK if options.quick else FULL
    results: list[Result] = []
    timings: dict[str, float] = {}
    for name in [options.only] if options.only else list(BENCHES):
        started = time.monotonic()
        for result in BENCHES[name](config):
            print(result.json(), flush=True)
            results.append(result)
        timings[name] = time.monotonic() - started
    print(summary(config, results, timings), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
