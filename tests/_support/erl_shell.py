"""A real ``erl`` node that a test drives line by line, like an Erlang shell.

``running_erl_shell(...)`` starts ``erl -noshell`` with a distribution name and a cookie,
pointed at the test's EPMD, listening on loopback only, with a private ``HOME``. Its
``-eval`` is a tiny read-eval-print loop over stdin: ``await shell.eval("net_adm:ping(...)")``
sends one expression sequence and returns what it evaluated to, printed by ``~0tp`` on one
line (``'pong'`` -> ``pong``); an exception raises ``ErlangError`` with ``{Class, Reason}``.
Bindings persist between calls (``X = ...`` then ``X``). Stopped by its pid at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from tests._support.erl_nodes import Epmd, _stop, erl_command, erl_env, require_erl

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from anyio.abc import Process

__all__ = ["ErlShell", "ErlangError", "running_erl_shell"]

STEP: Final = 15.0

_REPL: Final = (
    "Loop = fun Loop(B) -> case io:get_line(<<>>) of eof -> halt(); L -> "
    "try {ok,T,_} = erl_scan:string(L), {ok,E} = erl_parse:parse_exprs(T), "
    '{value,V,B2} = erl_eval:exprs(E,B), io:format("=> ~0tp~n",[V]), Loop(B2) '
    'catch C:R -> io:format("!! ~0tp~n",[{C,R}]), Loop(B) end end end, '
    'io:format("ready~n"), Loop(erl_eval:new_bindings()).'
)


class ErlangError(AssertionError):
    """An expression raised in the Erlang shell (``{Class, Reason}`` as erl printed it)."""


@dataclass
class ErlShell:
    """A running ``erl`` with a read-eval-print loop on its stdin."""

    name: str
    process: Process
    _reader: BufferedByteReceiveStream
    output: list[str] = field(default_factory=list)

    async def _line(self, step: str, limit: float) -> str:
        try:
            with anyio.fail_after(limit):
                raw = await self._reader.receive_until(b"\n", 16 * 1024 * 1024)
        except TimeoutError:
            raise AssertionError(
                f"step {step!r}: erl {self.name} printed nothing for {limit} s; "
                f"output so far: {self.output[-20:]}"
            ) from None
        except (anyio.EndOfStream, anyio.IncompleteRead):
            raise AssertionError(
                f"step {step!r}: erl {self.name} ended: {self.output[-20:]}"
            ) from None
        text = raw.decode(errors="replace").rstrip("\r")
        self.output.append(text)
        return text

    async def ready(self) -> None:
        """Wait until the loop runs (the node is distributed by then)."""
        while await self._line("ready", STEP) != "ready":
            pass

    async def eval(self, expression: str, *, limit: float = STEP) -> str:
        """Evaluate ``expression`` (one line; a final ``.`` is added if missing)."""
        text = expression.strip()
        if not text.endswith("."):
            text += "."
        assert "\n" not in text, "one line per expression"
        stdin = self.process.stdin
        assert stdin is not None
        await stdin.send(text.encode() + b"\n")
        while True:
            line = await self._line(expression, limit)
            if line.startswith("=> "):
                return line[3:]
            if line.startswith("!! "):
                raise ErlangError(f"{expression} raised {line[3:]}")

    def stop_signal(self, signum: int) -> None:
        """Send ``signum`` to the erl OS process (SIGSTOP freezes it, SIGCONT wakes it)."""
        os.kill(self.process.pid, signum)


@asynccontextmanager
async def running_erl_shell(
    alive: str,
    *,
    epmd: Epmd,
    cookie: str,
    home: Path,
    host: str = "localhost",
    long: bool = False,
    net_ticktime: int | None = None,
    hidden: bool = False,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[ErlShell]:
    """An ``erl`` node ``alive@host`` driven through ``ErlShell.eval``; stopped by its pid."""
    require_erl()
    name = f"{alive}@{host}"
    options = [
        *(["-kernel", "net_ticktime", str(net_ticktime)] if net_ticktime else []),
        *(["-hidden"] if hidden else []),
        *extra_args,
    ]
    command = erl_command(name, cookie=cookie, long=long, extra_args=options, expression=_REPL)
    process = await anyio.open_process(command, stderr=subprocess.STDOUT, env=erl_env(epmd, home))
    try:
        assert process.stdout is not None
        shell = ErlShell(name, process, BufferedByteReceiveStream(process.stdout))
        await shell.ready()
        yield shell
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a frozen node cannot be stopped
        await _stop(process)
