"""Real ``epmd`` and ``erl`` OS processes for the distribution tests.

- ``require_erl()``: skip a test when Erlang is not installed; fail it instead when
  ``CI=true`` (CI installs Debian's ``erlang-base``, so a missing ``erl`` there is a bug).
- ``running_epmd()``: an ``epmd`` of the test's own, a child process bound to 127.0.0.1 on a
  free port (never the system's 4369), stopped by its pid.
- ``running_erl(...)``: an ``erl`` node with a short (``-sname``) or long (``-name``) name and
  a cookie, pointed at that EPMD (``ERL_EPMD_PORT``), listening on loopback only, with a
  private ``HOME`` (so no ``~/.erlang.cookie`` of the user is read or written), running an
  Erlang expression; the test reads what it prints (``ErlNode.expect``). Stopped by its pid.

The expression reports through stdout, one fact a line, e.g.
``io:format("connect ~w~n", [net_kernel:connect_node('py@localhost')])``; erl's own log lines
(such as "Connection attempt ... rejected") come on stdout too and are kept in
``ErlNode.output``. ``READY`` is the expression fragment that prints ``ready`` once the
node is distributed, and ``WAIT`` keeps it running until it is stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from tests._support.nodes import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from anyio.abc import Process

__all__ = [
    "READY",
    "WAIT",
    "Epmd",
    "ErlNode",
    "erl_available",
    "otp_release",
    "require_erl",
    "running_epmd",
    "running_erl",
]

#: Prints ``ready`` (the node is distributed: -eval runs after the distribution started).
READY: Final = 'io:format("ready~n")'
#: Keeps the node running until it is stopped.
WAIT: Final = "receive after infinity -> ok end"
#: How long any one step with a real process may take.
STEP: Final = 20.0


def erl_available() -> bool:
    """Whether ``erl`` and ``epmd`` are on the path."""
    return shutil.which("erl") is not None and shutil.which("epmd") is not None


def require_erl() -> None:
    """Skip the test when Erlang is missing; fail it when ``CI=true``."""
    if erl_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("erl and epmd are needed for the interop tests (apt-get install erlang-base)")
    pytest.skip("erl and epmd are not installed (apt-get install erlang-base)")


def otp_release() -> int:
    """The major OTP release of the installed ``erl`` (25 for Debian 12's)."""
    done = subprocess.run(
        [
            "erl",
            "-noshell",
            "-start_epmd",
            "false",
            "-eval",
            'io:format("~s~n", [erlang:system_info(otp_release)]), halt().',
        ],
        capture_output=True,
        text=True,
        timeout=STEP,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


async def _stop(process: Process, limit: float = 10.0) -> None:
    """SIGTERM the process by its pid, SIGKILL it if it is still there after ``limit``."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(limit):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        await process.aclose()


async def _wait_answers(host: str, port: int, process: Process, attempts: int = 40) -> bool:
    """Poll ``host:port`` (a bounded number of connection attempts, backing off) until it
    answers; False if ``process`` ended first (the port was taken)."""
    delay = 0.005
    for _ in range(attempts):
        try:
            with anyio.fail_after(1.0):
                stream = await anyio.connect_tcp(host, port)
        except (OSError, TimeoutError):
            if process.returncode is not None:
                return False
            await anyio.sleep(delay)  # polling a fact: does it accept connections yet?
            delay = min(delay * 2, 0.25)
            continue
        await stream.aclose()
        return True
    raise AssertionError(f"epmd did not answer on {host}:{port} after {attempts} attempts")


@dataclass
class Epmd:
    """A test's own EPMD: ``port`` on 127.0.0.1; ``process`` is the child."""

    port: int
    process: Process
    host: str = "127.0.0.1"


@asynccontextmanager
async def running_epmd() -> AsyncIterator[Epmd]:
    """``epmd -port N -address 127.0.0.1 -relaxed_command_check`` on a free port; stopped by
    its pid when the block ends."""
    require_erl()
    for _ in range(5):
        port = free_port()
        process = await anyio.open_process(
            ["epmd", "-port", str(port), "-address", "127.0.0.1", "-relaxed_command_check"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            answered = await _wait_answers("127.0.0.1", port, process)
            if answered:
                yield Epmd(port, process)
                return
        finally:
            await _stop(process)
    raise AssertionError("could not start epmd on a free port in 5 tries")


@dataclass
class ErlNode:
    """A running ``erl``: its full ``name``, the child ``process`` and what it printed."""

    name: str
    process: Process
    _reader: BufferedByteReceiveStream
    output: list[str] = field(default_factory=list)

    async def line(self, *, step: str, limit: float = STEP) -> str:
        """The next line erl prints; fails the test, naming ``step``, if none comes."""
        try:
            with anyio.fail_after(limit):
                raw = await self._reader.receive_until(b"\n", 65536)
        except TimeoutError:
            raise AssertionError(
                f"step {step!r}: erl {self.name} printed nothing for {limit} s; "
                f"output so far: {self.output}"
            ) from None
        except (anyio.EndOfStream, anyio.IncompleteRead):
            raise AssertionError(
                f"step {step!r}: erl {self.name} ended; output: {self.output}"
            ) from None
        text = raw.decode(errors="replace").rstrip("\r")
        self.output.append(text)
        return text

    async def expect(self, prefix: str, *, step: str, limit: float = STEP) -> str:
        """The rest of the next line that starts with ``prefix`` (other lines are kept in
        ``output``), e.g. ``await node.expect("connect ", step="connect")`` -> ``"true"``."""
        with anyio.fail_after(limit):
            while True:
                text = await self.line(step=step, limit=limit)
                if text.startswith(prefix):
                    return text[len(prefix) :]

    def printed(self, fragment: str) -> bool:
        """Whether any line read so far contains ``fragment``."""
        return any(fragment in text for text in self.output)


def erl_command(
    name: str, *, cookie: str, long: bool, extra_args: Sequence[str], expression: str
) -> list[str]:
    """``erl`` distributed as ``name`` on loopback, with no EPMD of its own, running
    ``expression``."""
    return [
        "erl",
        "-noshell",
        "-name" if long else "-sname",
        name,
        "-setcookie",
        cookie,
        "-start_epmd",
        "false",
        "-kernel",
        "inet_dist_use_interface",
        "{127,0,0,1}",
        *extra_args,
        "-eval",
        expression,
    ]


def erl_env(epmd: Epmd, home: Path) -> dict[str, str]:
    """The environment of a test's ``erl``: the test's EPMD and a private ``HOME``."""
    return {**os.environ, "ERL_EPMD_PORT": str(epmd.port), "HOME": str(home)}


@asynccontextmanager
async def running_erl(
    alive: str,
    *,
    epmd: Epmd,
    cookie: str,
    expression: str,
    home: Path,
    host: str = "localhost",
    long: bool = False,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[ErlNode]:
    """An ``erl`` node ``alive@host`` running ``expression``, stopped by its pid at the end.

    Args:
        alive: the part before ``@``.
        epmd: the test's EPMD (``ERL_EPMD_PORT``); erl does not start one itself.
        cookie: ``-setcookie``.
        expression: Erlang code for ``-eval``; print facts one a line.
        home: a private ``HOME`` for the node.
        host: the host part (``localhost`` for short names, ``127.0.0.1`` for long ones).
        long: ``-name`` instead of ``-sname``.
        extra_args: more arguments for ``erl``.
    """
    require_erl()
    name = f"{alive}@{host}"
    command = erl_command(
        name, cookie=cookie, long=long, extra_args=extra_args, expression=expression
    )
    process = await anyio.open_process(
        command, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=erl_env(epmd, home)
    )
    try:
        assert process.stdout is not None
        yield ErlNode(name, process, BufferedByteReceiveStream(process.stdout))
    finally:
        await _stop(process)
