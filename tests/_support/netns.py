"""Network namespaces for one test: a small private network, cut and healed on demand.

``network_namespaces(n)`` builds, for the test that enters it:

- ``n`` namespaces (``srvt-<pid>-<seq>-<i>``, unique per test), each with ``lo`` up and one end
  of a veth pair, addressed ``10.77.<k>.<11+i>/24``;
- a bridge in the root namespace joining the other ends, with ``10.77.<k>.1/24`` on it, so
  the test process itself can reach every namespace. ``k`` is chosen per test run (from the
  test's pid and a counter) among the ``/24`` subnets of ``10.77.0.0/16`` that no address or
  route of this machine touches.

``Netns.popen(space, argv)`` runs a command inside a namespace (``ip netns exec``, which
execs the command: the child's pid is the command's own); every process started that way,
and every ``defer``-ed stop, runs at the end before the network is torn down.
``cut(a, b)`` / ``heal(a, b)`` add / remove a blackhole route to the other's address in
both namespaces: packets between the two vanish (TCP sees silence, as with a dead cable),
while both still talk to the rest. Everything (namespaces, veths, the bridge) is removed at
the end, even when the test fails; the traffic goes only to these addresses and loopback.

Root and ``ip`` are needed: ``require_netns()`` skips the test without them, or fails it
when ``CI=true`` (the CI container runs as root and installs ``iproute2``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["Netns", "Space", "network_namespaces", "require_netns"]

_SEQ = itertools.count(1)
_SECOND_OCTET = 77


def require_netns() -> None:
    """Skip the test without root or ``ip``; fail it when ``CI=true``."""
    problem = None
    if os.geteuid() != 0:
        problem = "network namespaces need root"
    elif shutil.which("ip") is None:
        problem = "network namespaces need `ip` (apt-get install iproute2)"
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(problem)
    pytest.skip(problem)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def _subnets_in_use() -> set[int]:
    """The third octets of the ``10.77.x.0/24`` subnets an address or route here touches."""
    used: set[int] = set()
    text = (
        _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show", "table", "all").stdout
    )
    for word in text.split():
        parts = word.split("/")[0].split(".")
        if len(parts) == 4 and parts[0] == "10" and parts[1] == str(_SECOND_OCTET):
            with contextlib.suppress(ValueError):
                used.add(int(parts[2]))
    return used


def _choose_subnet(seed: int) -> int:
    used = _subnets_in_use()
    for step in range(250):
        k = 1 + (seed + step) % 250
        if k not in used:
            return k
    raise AssertionError("no free 10.77.x.0/24 subnet")


@dataclass(frozen=True)
class Space:
    """One namespace: its ``name``, its ``address`` on the bridge, its veth ends."""

    index: int
    name: str
    address: str
    host_veth: str
    inner_veth: str


@dataclass
class Netns:
    """The namespaces of one test, the bridge, and what runs inside."""

    tag: str
    subnet: str
    bridge: str
    #: the test process's own address, on the bridge
    host_address: str
    spaces: list[Space] = field(default_factory=list)
    _processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    _cleanups: list[Callable[[], object]] = field(default_factory=list)

    def exec_argv(self, space: Space, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``space``."""
        return ["ip", "netns", "exec", space.name, *argv]

    def run(self, space: Space, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a short command inside ``space``; it must succeed."""
        done = subprocess.run(
            self.exec_argv(space, argv), capture_output=True, text=True, timeout=20
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv} in {space.name} failed: {done.stderr.strip()}")
        return done

    def popen(self, space: Space, argv: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``space``; it is stopped by its pid at the end."""
        process: subprocess.Popen[Any] = subprocess.Popen(self.exec_argv(space, argv), **options)
        self._processes.append(process)
        return process

    def defer(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` at the end, before the processes are stopped and the network goes
        (latest first)."""
        self._cleanups.append(cleanup)

    def cut(self, a: Space, b: Space) -> None:
        """Packets between ``a`` and ``b`` vanish from now on (both directions)."""
        for here, there in ((a, b), (b, a)):
            _ip("-n", here.name, "route", "add", "blackhole", f"{there.address}/32")

    def heal(self, a: Space, b: Space) -> None:
        """Undo ``cut(a, b)``."""
        for here, there in ((a, b), (b, a)):
            _ip("-n", here.name, "route", "del", "blackhole", f"{there.address}/32")

    def _teardown(self) -> None:
        problems: list[str] = []
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:  # go on tearing down; report at the end
                problems.append(f"{cleanup}: {exc!r}")
        for process in reversed(self._processes):
            _stop_pid(process)
        for space in self.spaces:
            _ip("netns", "del", space.name, check=False)  # takes its veth end (and the pair)
        for space in self.spaces:
            _ip("link", "del", space.host_veth, check=False)
        _ip("link", "del", self.bridge, check=False)
        if problems:
            raise AssertionError("teardown: " + "; ".join(problems))


def _stop_pid(process: subprocess.Popen[Any], limit: float = 10.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a frozen process cannot stop
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=limit)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@contextmanager
def network_namespaces(count: int) -> Iterator[Netns]:
    """``count`` namespaces on a bridge with the test process; all removed at the end."""
    require_netns()
    seq = next(_SEQ)
    pid = os.getpid()
    tag = f"st{pid}x{seq}"  # interface names must stay within 15 characters
    assert len(tag) <= 12, tag
    k = _choose_subnet(pid + seq)
    subnet = f"10.{_SECOND_OCTET}.{k}"
    net = Netns(tag=tag, subnet=subnet, bridge=f"{tag}b", host_address=f"{subnet}.1")
    try:
        _ip("link", "add", net.bridge, "type", "bridge")
        _ip("addr", "add", f"{net.host_address}/24", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        for i in range(count):
            space = Space(
                i, f"srvt-{pid}-{seq}-{i}", f"{subnet}.{11 + i}", f"{tag}h{i}", f"{tag}n{i}"
            )
            net.spaces.append(space)
            _ip("netns", "add", space.name)
            _ip(
                "link", "add", space.host_veth, "type", "veth",
                "peer", "name", space.inner_veth, "netns", space.name,
            )  # fmt: skip
            _ip("link", "set", space.host_veth, "master", net.bridge, "up")
            _ip("-n", space.name, "link", "set", "lo", "up")
            _ip("-n", space.name, "addr", "add", f"{space.address}/24", "dev", space.inner_veth)
            _ip("-n", space.name, "link", "set", space.inner_veth, "up")
        yield net
    finally:
        net._teardown()
