"""Benchmark of a live upgrade of many processes, through the real release handler.

What is measured (each size on a fresh node booted in a fresh temporary root):

- A tiny application ``fleet`` is written as a source tree (``releases/``, ``appspecs/``,
  ``apps/fleet-<vsn>/``, ``sys.config``, as the demo's): its top supervisor is
  ``simple_one_for_one`` over gen_servers of one callback module ``fleet.worker`` whose
  state is a dict of three ints, and its start function starts N of them. Release 2.0.0's
  appup says ``update fleet.worker change = "advanced"``; its ``code_change`` adds a
  fourth key (and drops it on the way down, ``("down", "1.0.0")``). Both packages are
  built with ``build_package``, 1.0.0 is booted in-process with ``run_node`` (as
  ``tests/release/_live.py`` does), 2.0.0 is unpacked, and ``handler.install("2.0.0")``
  is timed: suspend all N, load, code_change each (with its deep-copied backup), resume
  all, purge, commit. Each repeat installs 2.0.0 then back 1.0.0 (the downgrade is timed
  too, for the notes); the figures are medians over the repeats.
- ``upgrade_<n>_total`` (s), against a naive sequential loop over the same N processes
  measured in the same run: ``suspend``, ``get_state`` + ``deepcopy``, ``change_code``,
  ``resume``, one process at a time, with the same ``system_messages`` calls (OTP's way,
  one at a time, without the release handler's planning and commit).
- ``upgrade_<n>_per_process`` (µs per process), same baseline divided by N.
- ``upgrade_<n>_max_stall`` (ms): while the install runs, a pinger process calls an
  unrelated echo gen_server (outside every supervision tree, so never suspended) again and
  again, and the longest gap between two consecutive answers is the stall other work sees.
  Baseline: the same pinger's longest gap during the naive sequential loop (which
  yields at every call: the floor the event loop and the GC allow).

Anchors: Erlang/OTP 25 does 10,000 processes in about 160 ms; a naive sequential Python
version about 1.9 s. Targets: 10,000 in under 1 s (goal 0.3 s), no stall over 50 ms.
Run from the repository root::

    .venv/bin/python bench/upgrade_at_scale.py --quick             # 10,000, under a minute
    .venv/bin/python bench/upgrade_at_scale.py                     # 10,000 and 100,000
    .venv/bin/python bench/upgrade_at_scale.py --processes 2000

One JSON object per line on stdout (the format of ``bench/runtime.py``); a summary on stderr.
"""

from __future__ import annotations

import argparse
import copy
import gc
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.runtime is imported from the root
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from bench.runtime import Result, on_node  # noqa: E402
from server import code_server, kernel  # noqa: E402
from server.behaviours import gen_server, supervisor, system_messages  # noqa: E402
from server.node import run_node  # noqa: E402
from server.release import handler  # noqa: E402
from server.release.package import build_package  # noqa: E402
from server.release.source_tree import SourceTree  # noqa: E402

if TYPE_CHECKING:
    from server.kernel import Pid

ECHO = "bench._callbacks.echo"
APP = "fleet"
WORKER = "fleet.worker"

# -- the application, as source text -------------------------------------------------------

_INIT = '"""A fleet of small gen_servers, upgraded all at once by the benchmark."""\n'

_APP = '''"""The application callback: the supervisor, then ``count`` workers under it."""

from __future__ import annotations

from typing import Any

from server.app import get_env
from server.behaviours import supervisor

__vsn__ = "1.0.0"


async def start(start_type: str, args: Any) -> Any:
    pid = await supervisor.start_link("fleet.sup", None, name="fleet_sup")
    for i in range(get_env("fleet", "count", 0)):
        await supervisor.start_child(pid, i)
    return pid


def stop(state: Any) -> None:
    return None
'''

_SUP = '''"""The top supervisor: simple_one_for_one over fleet.worker."""

from __future__ import annotations

from server.behaviours.supervisor_callbacks import SupervisorSpec, worker

__vsn__ = "1.0.0"


def init(args: object) -> SupervisorSpec:
    return SupervisorSpec(
        children=[worker("worker", "fleet.worker", None)],
        strategy="simple_one_for_one",
        intensity=10,
        period=10.0,
    )
'''

_WORKER = '''"""One worker: its state a dict of small ints (2.0.0 adds their total)."""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_server_callbacks import Ok, Reply

__vsn__ = "{vsn}"


def init(args: Any) -> Ok:
    return Ok({{"a": int(args), "b": 2 * int(args), "c": 0}})


def handle_call(request: Any, from_: Any, state: dict[str, int]) -> Reply:
    if request == "state":
        return Reply(dict(state), state)
    state["c"] += 1
    return Reply(state["c"], state)


def code_change(old_vsn: Any, state: dict[str, int], extra: Any) -> dict[str, int]:
{code_change}
'''

_UP = """\
    if isinstance(old_vsn, tuple):  # ("down", "1.0.0"): run by this code, before 1.0.0 loads
        return {"a": state["a"], "b": state["b"], "c": state["c"]}
    return {"a": state["a"], "b": state["b"], "c": state["c"], "total": 0}"""
_DOWN = '    return {"a": state["a"], "b": state["b"], "c": state["c"]}'

_APPSPEC = """name = "fleet"
vsn = "{vsn}"
description = "many small gen_servers of one callback module"
modules = ["fleet", "fleet.app", "fleet.sup", "fleet.worker"]
registered = ["fleet_sup"]
applications = []

[mod]
module = "fleet.app"

[env]
count = 0
"""

_APPUP = """
[[appup.up]]
vsn = "1.0.0"
instructions = [{op = "update", module = "fleet.worker", change = "advanced"}]

[[appup.down]]
vsn = "1.0.0"
instructions = [{op = "update", module = "fleet.worker", change = "advanced"}]
"""

_SYS_CONFIG = """[node]
name = "fleet"
release = "fleet-1.0.0"
log_level = "WARNING"
apps_dir = "apps"

[fleet]
count = {count}
"""


def write_tree(root: Path, count: int) -> None:
    """Write the source tree of releases fleet 1.0.0 and 2.0.0 under ``root``."""
    for vsn, code_change in (("1.0.0", _DOWN), ("2.0.0", _UP)):
        package = root / "apps" / f"fleet-{vsn}" / "fleet"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(_INIT)
        (package / "app.py").write_text(_APP)
        (package / "sup.py").write_text(_SUP)
        (package / "worker.py").write_text(_WORKER.format(vsn=vsn, code_change=code_change))
        spec = _APPSPEC.format(vsn=vsn) + (_APPUP if vsn != "1.0.0" else "")
        (root / "appspecs").mkdir(exist_ok=True)
        (root / "appspecs" / f"fleet-{vsn}.toml").write_text(spec)
        (root / "releases").mkdir(exist_ok=True)
        (root / "releases" / f"fleet-{vsn}.toml").write_text(
            f'name = "fleet"\nvsn = "{vsn}"\n\n[[applications]]\nname = "fleet"\nvsn = "{vsn}"\n'
        )
    (root / "sys.config").write_text(_SYS_CONFIG.format(count=count))


# -- measuring -----------------------------------------------------------------------------


async def _pinger(owner: Pid, echo: Pid) -> None:
    """Call ``echo`` back to back; on ``"report"``, send the longest gap since the last."""
    last = perf_counter()
    longest = 0.0
    while True:
        await gen_server.call(echo, "ping", timeout=math.inf)
        now = perf_counter()
        longest = max(longest, now - last)
        last = now
        try:
            kernel.receive_nowait(lambda m: m == "report")
        except anyio.WouldBlock:
            continue
        kernel.send(owner, ("gap", longest))
        longest = 0.0
        last = perf_counter()


async def _gap(pinger_pid: Pid) -> float:
    """The longest gap since the previous report (the pinger answers after its next call)."""
    kernel.send(pinger_pid, "report")
    message = await kernel.receive(lambda m: isinstance(m, tuple) and m[:1] == ("gap",))
    assert isinstance(message, tuple)
    return float(message[1])


async def _naive_sequential(pids: list[Pid]) -> float:
    """OTP's steps one process at a time: suspend, back up, change_code, resume."""
    began = perf_counter()
    for pid in pids:
        await system_messages.suspend(pid)
        backup = copy.deepcopy(await system_messages.get_state(pid))
        await system_messages.change_code(pid, WORKER, "1.0.0", None)
        await system_messages.resume(pid)
        del backup
    return perf_counter() - began


@dataclass(frozen=True, slots=True)
class Measured:
    """What one size measured: one sample per repeat."""

    count: int
    boot: float
    installs: list[float]
    install_stalls: list[float]
    downgrades: list[float]
    naives: list[float]
    naive_stalls: list[float]


async def _boot(root: Path, tree: SourceTree) -> Pid:
    me = kernel.self()

    async def boot() -> object:
        return await run_node(
            root, tree, "fleet-1.0.0", on_booted=lambda vsn: kernel.send(me, ("booted", vsn))
        )

    node_pid = kernel.spawn(boot)
    ref = kernel.monitor(node_pid)
    booted = await kernel.receive(
        lambda m: (
            (isinstance(m, tuple) and m[:1] == ("booted",))
            or (type(m) is kernel.DownMessage and m.ref is ref)
        )
    )
    if type(booted) is kernel.DownMessage:
        raise RuntimeError(f"the node did not boot: {booted.reason!r}")
    kernel.demonitor(ref)
    return node_pid


async def _timed_install(vsn: str, pinger: Pid, count: int) -> tuple[float, float]:
    gc.collect()
    await _gap(pinger)
    began = perf_counter()
    report = await handler.install(vsn, code_change_timeout=30.0)
    seconds = perf_counter() - began
    stall = await _gap(pinger)
    assert len(report.processes) == count, (len(report.processes), count)
    return seconds, stall


async def _measure(root: Path, count: int, repeats: int) -> Measured:
    tree = SourceTree(root)
    packages = root / "packages"
    build_package(tree, APP, "2.0.0", packages)
    began = perf_counter()
    await _boot(root, tree)
    boot_seconds = perf_counter() - began
    workers = [row.pid for row in await supervisor.which_children("fleet_sup")]
    pids = [p for p in workers if isinstance(p, kernel.Pid)]
    assert len(pids) == count, (len(pids), count)
    echo = await gen_server.start(ECHO, None)
    assert echo is not None
    pinger = kernel.spawn(_pinger, kernel.self(), echo)
    await handler.unpack(packages / "fleet-2.0.0.tar.gz")
    m = Measured(count, boot_seconds, [], [], [], [], [])
    for _ in range(repeats):  # each install run right after a run of its baseline
        gc.collect()
        await _gap(pinger)
        m.naives.append(await _naive_sequential(pids))
        m.naive_stalls.append(await _gap(pinger))
        seconds, stall = await _timed_install("2.0.0", pinger, count)
        m.installs.append(seconds)
        m.install_stalls.append(stall)
        sample = await gen_server.call(pids[-1], "state")
        assert sample.get("total") == 0, sample
        seconds, _ = await _timed_install("1.0.0", pinger, count)
        m.downgrades.append(seconds)
    # no orderly stop: a supervisor stopping N children is not what is measured, and the
    # node's end kills every process anyway; the next size's node needs its own code paths
    code_server.forget_all()
    return m


def measure(count: int, repeats: int) -> Measured:
    """Boot a fresh node on a fresh root with ``count`` workers, upgrade it, measure."""
    with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as scratch:
        root = Path(scratch)
        write_tree(root, count)
        return on_node(_measure, root, count, repeats)


def _label(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 and count >= 1000 else str(count)


def results(m: Measured) -> list[Result]:
    """The JSON lines of one size (medians over the repeats)."""
    n = _label(m.count)
    naive = "naive sequential suspend/get_state+deepcopy/change_code/resume, one at a time"
    install, base = statistics.median(m.installs), statistics.median(m.naives)
    stall, base_stall = statistics.median(m.install_stalls), statistics.median(m.naive_stalls)
    return [
        Result(
            f"upgrade_{n}_total",
            install,
            "s",
            naive + ", s",
            base,
            install / base,
            (
                f"handler.install of {m.count:,} processes, median of {len(m.installs)}: "
                f"{_samples(m.installs, 1.0, 's')}; the downgrade back: "
                f"{_samples(m.downgrades, 1.0, 's')}; naive: {_samples(m.naives, 1.0, 's')}; "
                f"boot {m.boot:.1f} s",
                "anchors: Erlang/OTP 25 ~0.16 s for 10k; a naive sequential Python ~1.9 s; "
                "target < 1 s for 10k (goal 0.3 s)",
            ),
        ),
        Result(
            f"upgrade_{n}_per_process",
            install / m.count * 1e6,
            "us",
            naive + ", us per process",
            base / m.count * 1e6,
            install / base,
        ),
        Result(
            f"upgrade_{n}_max_stall",
            stall * 1e3,
            "ms",
            "longest gap between echo answers during the naive sequential loop, ms",
            base_stall * 1e3,
            stall / base_stall if base_stall else math.inf,
            (
                "longest gap between two answers of an unrelated echo server during one "
                f"install, median over the repeats: {_samples(m.install_stalls, 1e3, 'ms')}; "
                "target < 50 ms",
            ),
        ),
    ]


def _samples(values: list[float], scale: float, unit: str) -> str:
    return " ".join(f"{v * scale:.3g}" for v in values) + f" {unit}"


def summary(quick: bool, found: list[Result], wall: float) -> str:
    """A table of the results, then the notes."""
    lines = [
        f"upgrade benchmark ({'quick' if quick else 'full'}): Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs",
        f"{'bench':<26} {'value':>12} {'unit':<5} {'baseline':>12} {'ratio':>8}",
    ]
    lines.extend(
        f"{r.bench:<26} {r.value:>12.4g} {r.unit:<5} {r.baseline_value:>12.4g} {r.ratio:>8.3f}"
        for r in found
    )
    lines.append("")
    for r in found:
        lines.append(f"{r.bench}: baseline = {r.baseline}")
        lines.extend(f"  {note}" for note in r.notes)
    lines.append(f"wall time: {wall:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; JSON lines on stdout, the summary on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 processes only")
    parser.add_argument("--processes", type=int, action="append", help="size(s) to run instead")
    parser.add_argument("--repeats", type=int, help="installs per size (default: 3, or 5 full)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = options.processes or ([10_000] if options.quick else [10_000, 100_000])
    started = time.monotonic()
    found: list[Result] = []
    for count in sizes:
        repeats = options.repeats or (3 if options.quick or count > 10_000 else 5)
        for result in results(measure(count, repeats)):
            print(result.json(), flush=True)
            found.append(result)
    print(summary(options.quick, found, time.monotonic() - started), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
