"""Helpers for the code server tests: an application tree on disk, bounded waits.

Application sources are ``string.Template`` texts: ``$app`` is the test's own top-level
package name and any other ``$key`` is given by the caller (``$vsn`` mostly). They are
written under the test's source root and loaded by the code server, never type checked.

Every wait runs under ``anyio.fail_after``, so a hang fails at once and names its step.
"""

from __future__ import annotations

import contextlib
import importlib
import string
import textwrap
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server import code_server
from tests._support.waits import STEP as STEP
from tests._support.waits import down as down
from tests._support.waits import idle as idle
from tests._support.waits import recv as recv
from tests._support.waits import tagged as tagged
from tests._support.waits import trapped as trapped
from tests.behaviours._helpers import step, within

__all__ = [
    "STEP",
    "WORKER",
    "App",
    "down",
    "idle",
    "recv",
    "reply_of",
    "started",
    "step",
    "tagged",
    "trapped",
    "within",
]

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import ModuleType

    from server.code_server import ModuleVersion
    from server.kernel import Pid

    Matcher = Callable[[object], bool]


@dataclass(frozen=True, slots=True)
class App:
    """One test's application package ``name`` under the source root ``root``."""

    name: str
    root: Path

    def dotted(self, module: str) -> str:
        """The full name of ``module`` (relative to the package; ``""`` is the package)."""
        return f"{self.name}.{module}" if module else self.name

    def path(self, module: str, *, package: bool = False) -> Path:
        """The source file of ``module`` (``__init__.py`` for the package or a sub-package)."""
        base = self.root / self.name
        if module:
            base = base.joinpath(*module.split("."))
        if package or not module:
            return base / "__init__.py"
        return base.with_suffix(".py")

    def render(self, template: str, **subs: str) -> str:
        """The source text of ``template`` with ``$app`` and ``subs`` substituted."""
        return string.Template(textwrap.dedent(template)).substitute(app=self.name, **subs)

    def write(self, module: str, template: str, *, package: bool = False, **subs: str) -> Path:
        """Write ``module``'s source file (creating its directories); returns its path."""
        path = self.path(module, package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(template, **subs), encoding="utf-8")
        return path

    def first(
        self, module: str, template: str, *, package: bool = False, **subs: str
    ) -> ModuleVersion:
        """Write ``module``'s file and import it; returns its first (current) version."""
        self.write(module, template, package=package, **subs)
        return code_server.load(self.dotted(module))

    def load(self, module: str, template: str, **subs: str) -> ModuleVersion:
        """Load a new version of ``module`` from ``template`` (not written to disk)."""
        return code_server.load(self.dotted(module), self.render(template, **subs))

    def import_(self, module: str) -> ModuleType:
        """Import ``module`` (what ``import $app.module`` binds, the module itself)."""
        return importlib.import_module(self.dotted(module))

    def slots(self, module: str) -> list[tuple[str, object]]:
        """``(slot, vsn)`` of each version of ``module`` in memory, current first."""
        return [(info.slot, info.vsn) for info in code_server.which_versions(self.dotted(module))]


async def reply_of(tag: str, pid: Pid, *, step: str) -> tuple[object, ...]:
    """Wait for ``(tag, pid, ...)`` and return the whole tuple."""
    message = await recv(tagged(tag, pid), step=step)
    assert type(message) is tuple
    return message


#: An application module of process bodies (``$vsn``): each tells the tester
#: ``(what, pid, vsn)`` with the vsn of the code it runs.
WORKER = '''
    from server import kernel
    from server.code_server import module_proxy

    __vsn__ = "$vsn"
    this = module_proxy(__name__)


    def tell(tester, what):
        kernel.send(tester, (what, kernel.self(), __vsn__))


    async def park(tester):
        """Parks at the bottom of a chain of three frames of this version."""
        return await _middle(tester)


    async def _middle(tester):
        return await _innermost(tester)


    async def _innermost(tester):
        tell(tester, "parked")
        await kernel.receive(lambda m: m == "go")
        raise ValueError("crashed in " + __vsn__)


    async def local_loop(tester):
        while True:  # never leaves this version's frame
            tell(tester, "iteration")
            await kernel.receive(lambda m: m == "next")


    async def local_recursion(tester):
        tell(tester, "iteration")
        await kernel.receive(lambda m: m == "next")
        return await local_recursion(tester)  # a bare name: this version again


    async def qualified_recursion(tester):
        tell(tester, "iteration")
        await kernel.receive(lambda m: m == "next")
        return await this.qualified_recursion(tester)  # new code, old frame kept below


    async def trampoline(tester):
        tell(tester, "iteration")
        await kernel.receive(lambda m: m == "next")
        return kernel.Continue(this.trampoline, tester)  # the kernel drops this frame


    async def ticks():
        while True:
            await kernel.receive(lambda m: m == "next")
            yield __vsn__
'''


async def started(tag: str, pid: Pid, vsn: str, *, step: str) -> None:
    """Wait for ``(tag, pid, vsn)``: ``pid`` has reached that point in version ``vsn``."""
    message = await reply_of(tag, pid, step=step)
    assert message == (tag, pid, vsn), f"step {step!r}: expected {vsn}, got {message!r}"


@contextlib.contextmanager
def managed_package(
    tmp_path: Path, prefix: str, what: str, module: str, source: str
) -> Iterator[App]:
    """A package ``<prefix>_<hex>`` under ``tmp_path`` given to the code server, its
    ``module`` written from ``source`` and loaded at ``v1``; the path is taken back after."""
    root = tmp_path / "src"
    root.mkdir()
    tree = App(name=f"{prefix}_{uuid.uuid4().hex}", root=root)
    tree.write("", f'"""{what} of one test."""\n')
    code_server.add_path(root)
    try:
        tree.first(module, source, vsn="v1")
        yield tree
    finally:
        code_server.remove_path(root)
