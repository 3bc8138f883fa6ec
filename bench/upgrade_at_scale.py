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
- ``upgrade_<n>_vs_otp`` (s): the same install against Erlang/OTP in the same run, when
  ``erl`` is on PATH: N gen_servers of a module compiled from source by ``compile:file``
  inside ``erl``, under a simple_one_for_one supervisor, upgraded as release_handler_1
  does for ``{update, M, {advanced, []}}``: ``which_children``, ``sys:suspend`` each,
  ``code:load_binary``, ``sys:change_code`` each, ``sys:resume`` each, ``code:soft_purge``.
- ``upgrade_<n>_gc_pause`` (ms) and ``upgrade_<n>_max_stall_gc`` (ms): the longest cyclic
  GC collection during the installs and the stall, against a second node of the same size
  whose ``[node.gc] freeze`` is false (skipped with ``--no-gc-compare``). No
  ``gc.collect()`` runs before the installs: a collection that falls inside one is part
  of what the other processes wait for.

Targets (issue 17): 10,000 no longer than OTP in the same run, 100,000 within 1 s, no
stall over 20 ms. Run from the repository root::

    .venv/bin/python bench/upgrade_at_scale.py --quick             # 10,000, under a minute
    .venv/bin/python bench/upgrade_at_scale.py                     # 10,000 and 100,000
    .venv/bin/python bench/upgrade_at_scale.py --processes 2000
    .venv/bin/python bench/upgrade_at_scale.py --quick --no-otp --no-gc-compare

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
import shutil
import statistics
import subprocess
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

[node.gc]
freeze = {freeze}

[fleet]
count = {count}
"""


def write_tree(root: Path, count: int, *, freeze: bool = True) -> None:
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
    (root / "sys.config").write_text(
        _SYS_CONFIG.format(count=count, freeze="true" if freeze else "false")
    )


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
    freeze: bool
    boot: float
    installs: list[float]
    install_stalls: list[float]
    install_gc: list[tuple[float, int]]  # longest collection pause (s), full collections
    downgrades: list[float]
    naives: list[float]
    naive_stalls: list[float]


class _GcPauses:
    """The cyclic GC's pauses while ``on``: the longest, and how many were full."""

    def __init__(self) -> None:
        self.on = False
        self.began = 0.0
        self.longest = 0.0
        self.full = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self.began = perf_counter()
            return
        self.longest = max(self.longest, perf_counter() - self.began)
        self.full += info["generation"] == 2

    def start(self) -> None:
        self.on, self.longest, self.full = True, 0.0, 0

    def stop(self) -> tuple[float, int]:
        self.on = False
        return self.longest, self.full


_PAUSES = _GcPauses()


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


async def _timed_install(
    vsn: str, pinger: Pid, count: int
) -> tuple[float, float, tuple[float, int]]:
    await _gap(pinger)
    _PAUSES.start()
    began = perf_counter()
    report = await handler.install(vsn, code_change_timeout=30.0)
    seconds = perf_counter() - began
    pauses = _PAUSES.stop()
    stall = await _gap(pinger)
    assert len(report.processes) == count, (len(report.processes), count)
    return seconds, stall, pauses


async def _measure(root: Path, count: int, repeats: int, freeze: bool) -> Measured:
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
    m = Measured(count, freeze, boot_seconds, [], [], [], [], [], [])
    # no gc.collect() before the runs: a full collection that falls inside one is part of
    # what the node's processes wait for (the node's GC policy is what is measured)
    for _ in range(repeats):  # each install run right after a run of its baseline
        await _gap(pinger)
        m.naives.append(await _naive_sequential(pids))
        m.naive_stalls.append(await _gap(pinger))
        seconds, stall, pauses = await _timed_install("2.0.0", pinger, count)
        m.installs.append(seconds)
        m.install_stalls.append(stall)
        m.install_gc.append(pauses)
        sample = await gen_server.call(pids[-1], "state")
        assert sample.get("total") == 0, sample
        seconds, _, _ = await _timed_install("1.0.0", pinger, count)
        m.downgrades.append(seconds)
    # no orderly stop: a supervisor stopping N children is not what is measured, and the
    # node's end kills every process anyway; the next size's node needs its own code paths
    code_server.forget_all()
    return m


def measure(count: int, repeats: int, *, freeze: bool = True) -> Measured:
    """Boot a fresh node on a fresh root with ``count`` workers, upgrade it, measure.

    ``freeze`` is the node's ``[node.gc] freeze``; what an earlier node froze is unfrozen
    and collected first, so each node starts from the same heap.
    """
    gc.unfreeze()
    gc.collect()
    if _PAUSES not in gc.callbacks:
        gc.callbacks.append(_PAUSES)
    with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as scratch:
        root = Path(scratch)
        write_tree(root, count, freeze=freeze)
        return on_node(_measure, root, count, repeats, freeze)


# -- the same upgrade in Erlang/OTP --------------------------------------------------------

_ERL_WORKER = """-module(fleet_worker).
-behaviour(gen_server).
-vsn("{vsn}").
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).
init(I) -> {{ok, #{{a => I, b => 2 * I, c => 0}}}}.
handle_call(state, _From, S) -> {{reply, S, S}};
handle_call(_, _From, S = #{{c := C}}) -> {{reply, C + 1, S#{{c := C + 1}}}}.
handle_cast(_, S) -> {{noreply, S}}.
{code_change}
"""
_ERL_UP = """\
code_change({down, _}, #{a := A, b := B, c := C}, _Extra) ->
    {ok, #{a => A, b => B, c => C}};
code_change(_OldVsn, #{a := A, b := B, c := C}, _Extra) ->
    {ok, #{a => A, b => B, c => C, total => 0}}."""
_ERL_DOWN = """\
code_change(_OldVsn, #{a := A, b := B, c := C}, _Extra) ->
    {ok, #{a => A, b => B, c => C}}."""

_ERL_SUP = """-module(fleet_sup).
-behaviour(supervisor).
-export([init/1]).
init([]) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 10, period => 10},
          [#{id => worker, start => {gen_server, start_link, [fleet_worker]},
             modules => [fleet_worker]}]}}.
"""

# What release_handler_1 does for {update, fleet_worker, {advanced, []}} (one module,
# soft purge): the supervised processes of the tree, then sys:suspend each, code:purge +
# code:load_binary, sys:change_code each (down: before the load), sys:resume each, and
# code:soft_purge; the processes one after the other, as release_handler_1 does.
_ERL_BENCH = """-module(fleet_bench).
-export([main/1]).

main([Dir, NText, RText]) ->
    N = list_to_integer(NText),
    V1 = compiled(Dir, "v1"),
    V2 = compiled(Dir, "v2"),
    {ok, fleet_sup, Sup} = compile:file(filename:join(Dir, "fleet_sup.erl"), [binary, report]),
    {module, fleet_sup} = code:load_binary(fleet_sup, "fleet_sup.erl", Sup),
    {module, fleet_worker} = code:load_binary(fleet_worker, "fleet_worker.erl", V1),
    {ok, _} = supervisor:start_link({local, fleet_sup}, fleet_sup, []),
    [{ok, _} = supervisor:start_child(fleet_sup, [I, []]) || I <- lists:seq(1, N)],
    lists:foreach(
        fun(_) ->
            Up = timed(fun() -> upgrade(V2, "1.0.0", up) end),
            #{total := 0} = sys:get_state(element(2, hd(supervisor:which_children(fleet_sup)))),
            Down = timed(fun() -> upgrade(V1, {down, "1.0.0"}, down) end),
            io:format("otp_upgrade ~b ~b ~b~n", [N, Up, Down])
        end,
        lists:seq(1, list_to_integer(RText))).

compiled(Dir, Vsn) ->
    {ok, fleet_worker, Bin} =
        compile:file(filename:join([Dir, Vsn, "fleet_worker.erl"]), [binary, report]),
    Bin.

timed(Fun) ->
    T0 = erlang:monotonic_time(microsecond),
    ok = Fun(),
    erlang:monotonic_time(microsecond) - T0.

upgrade(Bin, OldVsn, Direction) ->
    Pids = [P || {_, P, worker, Mods} <- supervisor:which_children(fleet_sup),
                 is_pid(P), lists:member(fleet_worker, Mods)],
    [ok = sys:suspend(P, 30000) || P <- Pids],
    Direction =:= up andalso load(Bin),
    [ok = sys:change_code(P, fleet_worker, OldVsn, [], 30000) || P <- Pids],
    Direction =:= down andalso load(Bin),
    [ok = sys:resume(P, 30000) || P <- Pids],
    true = code:soft_purge(fleet_worker),
    ok.

load(Bin) ->
    code:purge(fleet_worker),
    {module, fleet_worker} = code:load_binary(fleet_worker, "fleet_worker.erl", Bin),
    true.
"""


def otp_upgrade(count: int, repeats: int) -> tuple[list[float], list[float], str] | None:
    """The same upgrade of ``count`` gen_servers in Erlang/OTP: (ups, downs, release) in s.

    None when ``erl`` is not on PATH. The modules are compiled from source by
    ``compile:file`` inside ``erl`` (no ``erlc`` needed).
    """
    erl = shutil.which("erl")
    if erl is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-upgrade-otp-") as scratch:
        root = Path(scratch)
        for vsn, code_change in (("v1", _ERL_DOWN), ("v2", _ERL_UP)):
            (root / vsn).mkdir()
            number = "1.0.0" if vsn == "v1" else "2.0.0"
            text = _ERL_WORKER.format(vsn=number, code_change=code_change)
            (root / vsn / "fleet_worker.erl").write_text(text)
        (root / "fleet_sup.erl").write_text(_ERL_SUP)
        (root / "fleet_bench.erl").write_text(_ERL_BENCH)
        script = (
            f'{{ok, M, B}} = compile:file("{root / "fleet_bench.erl"}", [binary, report]), '
            '{module, M} = code:load_binary(M, "fleet_bench.erl", B), '
            f'fleet_bench:main(["{root}", "{count}", "{repeats}"]), '
            'io:format("otp_release ~s~n", [erlang:system_info(otp_release)]), halt().'
        )
        done = subprocess.run(
            [erl, "+P", str(max(262_144, 2 * count)), "-noshell", "-eval", script],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=root,
        )
    ups: list[float] = []
    downs: list[float] = []
    release = "?"
    for line in done.stdout.splitlines():
        words = line.split()
        if words[:1] == ["otp_upgrade"] and len(words) == 4:
            ups.append(int(words[2]) / 1e6)
            downs.append(int(words[3]) / 1e6)
        elif words[:1] == ["otp_release"] and len(words) == 2:
            release = words[1]
    if done.returncode != 0 or len(ups) != repeats:
        raise RuntimeError(f"erl failed ({done.returncode}): {done.stdout}{done.stderr}")
    return ups, downs, release


def _label(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 and count >= 1000 else str(count)


Otp = tuple[list[float], list[float], str]


def results(m: Measured, otp: Otp | None = None, unfrozen: Measured | None = None) -> list[Result]:
    """The JSON lines of one size (medians over the repeats).

    ``otp``: the same upgrade in Erlang/OTP (``otp_upgrade``); ``unfrozen``: the same
    size measured on a node whose ``[node.gc] freeze`` is off.
    """
    n = _label(m.count)
    naive = "naive sequential suspend/get_state+deepcopy/change_code/resume, one at a time"
    install, base = statistics.median(m.installs), statistics.median(m.naives)
    stall, base_stall = statistics.median(m.install_stalls), statistics.median(m.naive_stalls)
    found = [
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
                "targets: no longer than OTP's in the same run for 10k; 100k within 1 s",
            ),
        ),
    ]
    if otp is not None:
        ups, downs, release = otp
        otp_up = statistics.median(ups)
        found.append(
            Result(
                f"upgrade_{n}_vs_otp",
                install,
                "s",
                f"Erlang/OTP {release}: the same upgrade as release_handler_1 does it "
                "(which_children, sys:suspend each, load_binary, sys:change_code each, "
                "sys:resume each, soft_purge), s",
                otp_up,
                install / otp_up,
                (
                    f"OTP {release}, {m.count:,} gen_servers, median of {len(ups)}: "
                    f"{_samples(ups, 1.0, 's')}; the downgrade back: {_samples(downs, 1.0, 's')}"
                    "; ratio = this project / OTP (target <= 1 for 10k)",
                ),
            )
        )
    found.extend(
        [
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
                    f"install, median over the repeats: {_samples(m.install_stalls, 1e3, 'ms')}"
                    "; target < 20 ms",
                ),
            ),
        ]
    )
    if unfrozen is not None:
        pause = max(p for p, _ in m.install_gc)
        base_pause = max(p for p, _ in unfrozen.install_gc)
        off_stall = statistics.median(unfrozen.install_stalls)
        found.extend(
            [
                Result(
                    f"upgrade_{n}_gc_pause",
                    pause * 1e3,
                    "ms",
                    "the same with [node.gc] freeze = false, ms",
                    base_pause * 1e3,
                    pause / base_pause if base_pause else math.inf,
                    (
                        "longest cyclic GC collection during the installs (any generation); "
                        "full collections per install, freeze on: "
                        f"{' '.join(str(f) for _, f in m.install_gc)}, off: "
                        f"{' '.join(str(f) for _, f in unfrozen.install_gc)}",
                    ),
                ),
                Result(
                    f"upgrade_{n}_max_stall_gc",
                    stall * 1e3,
                    "ms",
                    "the same install's longest echo gap with [node.gc] freeze = false, ms",
                    off_stall * 1e3,
                    stall / off_stall if off_stall else math.inf,
                    (
                        f"freeze off: {_samples(unfrozen.install_stalls, 1e3, 'ms')}, installs "
                        f"{_samples(unfrozen.installs, 1.0, 's')}",
                    ),
                ),
            ]
        )
    return found


def _samples(values: list[float], scale: float, unit: str) -> str:
    return " ".join(f"{v * scale:.3g}" for v in values) + f" {unit}"


def summary(quick: bool, found: list[Result], wall: float) -> str:
    """A table of the results, then the notes."""
    lines = [
        f"upgrade benchmark ({'quick' if quick else 'full'}): Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs",
        f"{'bench':<28} {'value':>12} {'unit':<5} {'baseline':>12} {'ratio':>8}",
    ]
    lines.extend(
        f"{r.bench:<28} {r.value:>12.4g} {r.unit:<5} {r.baseline_value:>12.4g} {r.ratio:>8.3f}"
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
    parser.add_argument(
        "--no-gc-compare",
        action="store_true",
        help="skip the second node of each size with [node.gc] freeze = false",
    )
    parser.add_argument("--no-otp", action="store_true", help="skip the Erlang/OTP column")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = options.processes or ([10_000] if options.quick else [10_000, 100_000])
    started = time.monotonic()
    found: list[Result] = []
    for count in sizes:
        repeats = options.repeats or (3 if options.quick or count > 10_000 else 5)
        otp = None if options.no_otp else otp_upgrade(count, repeats)
        measured = measure(count, repeats)
        unfrozen = None if options.no_gc_compare else measure(count, repeats, freeze=False)
        for result in results(measured, otp, unfrozen):
            print(result.json(), flush=True)
            found.append(result)
    print(summary(options.quick, found, time.monotonic() - started), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
