"""One version of a module: a real module object built from one source text.

Building a version compiles and executes the source in a fresh module object. While the body
runs, ``sys.modules[name]`` is that new object (dataclasses, ``typing.get_type_hints`` and
pydantic resolve names through it); whatever held the name before is put back afterwards,
whether the body succeeded or not.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import linecache
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

from server.errors import ModuleLoadError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ModuleVersion", "build_version", "digest_of", "forget_version", "read_vsn"]


@final
@dataclass(eq=False, slots=True)
class ModuleVersion:
    """A loaded version: the module object, where it came from, and its vsn."""

    name: str
    module: types.ModuleType
    path: str
    is_package: bool
    digest: str
    loaded_at: float = field(default_factory=time.time)
    synthetic_filename: str | None = None

    @property
    def vsn(self) -> object:
        """The module's ``__vsn__`` if it sets one, else its content hash (OTP's rule)."""
        return read_vsn(self.module, self.digest)


def read_vsn(module: types.ModuleType, digest: str) -> object:
    """``module.__vsn__`` when present, else ``digest``."""
    return module.__dict__.get("__vsn__", digest)


def digest_of(text: str) -> str:
    """The content hash of a source text (the vsn of a module that sets no ``__vsn__``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def build_version(
    name: str,
    source: str | bytes,
    path: Path,
    *,
    is_package: bool,
    loader: importlib.machinery.SourceFileLoader,
    synthetic: str | None,
) -> ModuleVersion:
    """Compile and execute ``source`` as a new version of module ``name``.

    ``synthetic`` is the file name for code that does not come from ``path`` as it is on
    disk (a source given as text): its lines go to ``linecache`` under that name, so that
    tracebacks show them. None compiles the code under ``path``.

    Raises:
        ModuleLoadError: the source does not compile, or its body raised; the error names
            the file and line, and nothing outside the discarded module was changed.
    """
    text = source.decode("utf-8") if isinstance(source, bytes) else source
    digest = digest_of(text)
    filename = str(path)
    if synthetic is not None:
        filename = synthetic
        linecache.cache[synthetic] = (len(text), None, text.splitlines(True), synthetic)
    try:
        code = compile(text, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        _forget(synthetic)
        raise ModuleLoadError(name, str(path), exc.lineno, f"syntax error: {exc.msg}") from None
    module = types.ModuleType(name)
    spec = importlib.machinery.ModuleSpec(name, loader, origin=str(path), is_package=is_package)
    if is_package:
        spec.submodule_search_locations = [str(path.parent)]
        module.__path__ = [str(path.parent)]
    spec.has_location = True
    module.__spec__ = spec
    module.__loader__ = loader
    module.__file__ = str(path)
    module.__package__ = name if is_package else name.rpartition(".")[0]
    failure = _execute(name, code, module, filename)
    if failure is not None:
        _forget(synthetic)
        line, reason = failure
        raise ModuleLoadError(name, str(path), line, f"its body raised {reason}")
    return ModuleVersion(
        name=name,
        module=module,
        path=str(path),
        is_package=is_package,
        digest=digest,
        synthetic_filename=synthetic,
    )


def _execute(
    name: str, code: types.CodeType, module: types.ModuleType, filename: str
) -> tuple[int | None, str] | None:
    """Run the body with ``sys.modules[name]`` bound to ``module``; None if it succeeded.

    On failure, the line in ``filename`` and the text of the exception: the exception
    itself is dropped here, with its traceback, so that nothing keeps the failed version's
    frames (and through them its globals) alive.
    """
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        line = _line_in(exc, filename)
        reason = "".join(traceback.format_exception_only(exc)).strip()
        _forget_frames(exc)
        return line, reason
    finally:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
    return None


def _forget_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        item.__traceback__ = None
        pending += (item.__cause__, item.__context__)


def forget_version(version: ModuleVersion) -> None:
    """Release what a version left outside itself (its lines in ``linecache``)."""
    _forget(version.synthetic_filename)


def _forget(synthetic: str | None) -> None:
    if synthetic is not None:
        linecache.cache.pop(synthetic, None)


def _line_in(exc: BaseException, filename: str) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
    return line
