"""The code server's table: which modules it owns, and their current and old versions.

How this works:

1. ``add_path(dir)`` declares an application source root: every top-level package or module
   found in it becomes *managed*. The import hook (``find_spec``) answers only for managed
   names; the standard library and third-party packages import as usual.
2. A managed module has one ``ModuleEntry``: a stable ``ModuleProxy`` (what ``sys.modules``
   and every importer hold) and up to two versions, ``current`` and ``old``.
3. ``load`` builds the new version first (``_version.build_version``); only when it compiled
   and ran does it become current, the former current becoming old. With an old version
   already there, ``load`` refuses (``NotPurged``) and changes nothing.
4. A process runs old code when a frame of its suspended coroutine stack executes in the old
   version's globals. ``soft_purge`` refuses while one does; ``purge`` kills them
   (``killed``), waits for their ends, then drops the old version. ``importlib.reload`` of
   a managed module is a ``load`` like any other.
   A process that set a purge notice (``on_purge``) is told first and given
   ``PURGE_NOTICE_TIMEOUT`` seconds to leave the old code (the event its notice returned
   is set) or end (a WebSocket connection closes with 1012); it is killed as any other if
   it still runs the old code then. A
   process that asked (``watch_old_code``) gets ``("old_code_lingers", module)`` each time
   a soft purge of that module is refused.
5. The table is a plain synchronous object: imports must reach it synchronously, and the
   node is single-threaded, so each operation is atomic. Only ``purge`` waits (for the
   processes it killed).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import anyio

from server import kernel
from server.code_server._proxy import ModuleProxy
from server.code_server._version import (
    ModuleVersion,
    build_version,
    digest_of,
    forget_version,
)
from server.errors import (
    ModuleConflict,
    ModuleLoadError,
    NoProcessError,
    NotPurged,
    ProcessError,
    UnknownModule,
)

if TYPE_CHECKING:
    import types
    from collections.abc import Iterable, Mapping, Sequence

    from server.kernel import Pid

__all__ = [
    "PURGE_NOTICE_LABEL",
    "PURGE_NOTICE_TIMEOUT",
    "CodeServer",
    "ModuleEntry",
    "PathsUndo",
    "VersionInfo",
    "code_server",
    "resolve",
    "top_level_names",
]


logger = logging.getLogger("server.code_server")

#: The (hidden) process label holding a process's purge notice (see ``on_purge``).
PURGE_NOTICE_LABEL: Final = "_purge_notice"
#: How long a purge waits for the processes it noticed to leave the old code, in seconds.
PURGE_NOTICE_TIMEOUT: Final = 5.0


@final
class ModuleEntry:
    """One managed module: its proxy and its versions."""

    __slots__ = ("current", "name", "old", "proxy")

    def __init__(self, name: str) -> None:
        self.name = name
        self.current: ModuleVersion | None = None
        self.old: ModuleVersion | None = None
        self.proxy = ModuleProxy(self)


@final
@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A version as ``which_versions`` and ``all_loaded`` report it."""

    module: str
    slot: str  # "current" | "old"
    vsn: object
    path: str
    loaded_at: float


@final
@dataclass(frozen=True, slots=True)
class PathsUndo:
    """What ``replace_paths`` changed: each top-level name and the root it had before.

    Plain data: ``restore_paths`` puts every name back (None: it was not managed). Undoing
    touches only the code paths; modules already loaded keep their versions.
    """

    previous: tuple[tuple[str, Path | None], ...]


class _Loader(importlib.machinery.SourceFileLoader):
    """Loads a managed module through the code server (and serves its resource files)."""

    def __init__(self, owner: CodeServer, fullname: str, path: str) -> None:
        super().__init__(fullname, path)
        self.owner = owner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.owner.entry_for(spec.name).proxy

    def exec_module(self, module: types.ModuleType) -> None:
        # ``import`` runs this once; ``importlib.reload`` runs it again on the same proxy,
        # and then it is a ``load`` like any other (current becomes old, or NotPurged).
        assert isinstance(module, ModuleProxy)
        entry = module.__server_entry__
        if entry.current is None and entry.old is None:
            self.owner.first_load(entry, Path(self.path))
        else:
            self.owner.load(entry.name, Path(self.path))


@final
class CodeServer(importlib.abc.MetaPathFinder):
    """Owns every application module of this OS process (one instance: ``code_server``)."""

    def __init__(self) -> None:
        self.roots: dict[str, Path] = {}
        self.entries: dict[str, ModuleEntry] = {}
        self.installed = False
        self.watchers: dict[str, list[Pid]] = {}  # told when a soft purge is refused

    # -- source roots ---------------------------------------------------------------------

    def install(self) -> None:
        """Put the import hook first on ``sys.meta_path``."""
        if not self.installed:
            sys.meta_path.insert(0, self)
            self.installed = True

    def add_path(self, directory: Path | str) -> list[str]:
        """Manage every top-level package and module found in ``directory``.

        Returns:
            The top-level names now managed from it.

        Raises:
            ModuleConflict: another root already provides one of those names.
            FileNotFoundError: ``directory`` does not exist.
        """
        root = Path(directory).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"application source root {root} is not a directory")
        names = top_level_names(root)
        for name in names:
            known = self.roots.get(name)
            if known is not None and known != root:
                raise ModuleConflict(name, str(known), str(root))
        for name in names:
            self.roots[name] = root
        self.install()
        return names

    def replace_paths(
        self, directories: Iterable[Path | str], *, keep_managed: bool = False
    ) -> PathsUndo:
        """Point every top-level name found in ``directories`` at the directory it is in.

        Args:
            directories: source roots (a new release's lib directories).
            keep_managed: leave the names already managed where they are (only new names
                are added).

        Returns:
            The undo: ``restore_paths`` puts every name it changed back.

        Raises:
            FileNotFoundError: a directory does not exist; nothing changed.
            ModuleConflict: two of ``directories`` provide the same name; nothing changed.
        """
        wanted: dict[str, Path] = {}
        for directory in directories:
            root = Path(directory).resolve()
            if not root.is_dir():
                raise FileNotFoundError(f"application source root {root} is not a directory")
            for name in top_level_names(root):
                known = wanted.get(name)
                if known is not None and known != root:
                    raise ModuleConflict(name, str(known), str(root))
                wanted[name] = root
        if keep_managed:
            wanted = {name: root for name, root in wanted.items() if name not in self.roots}
        undo = PathsUndo(tuple((name, self.roots.get(name)) for name in wanted))
        self.roots.update(wanted)
        if wanted:
            self.install()
        return undo

    def restore_paths(self, undo: PathsUndo) -> None:
        """Put back every name ``undo`` records, last change first (None: unmanaged again).

        Raises:
            TypeError: ``undo`` is not a ``PathsUndo``; nothing changed.
        """
        if not isinstance(undo, PathsUndo):
            raise TypeError(f"restore_paths takes the PathsUndo of replace_paths, not {undo!r}")
        for name, where in reversed(undo.previous):
            if where is None:
                self.roots.pop(name, None)
            else:
                self.roots[name] = where

    def code_paths(self) -> list[Path]:
        """Every managed source root, sorted."""
        return sorted(set(self.roots.values()))

    def remove_all(self) -> None:
        """Stop managing every root and forget every module the table holds.

        Also the modules of a name no root provides any more (its path was restored
        away while they were loaded).
        """
        self.roots.clear()
        for name in list(self.entries):
            self._forget(name)

    def remove_path(self, directory: Path | str) -> None:
        """Stop managing the names of ``directory`` and forget their modules entirely."""
        root = Path(directory).resolve()
        tops = [name for name, where in self.roots.items() if where == root]
        for top in tops:
            del self.roots[top]
            for name in [n for n in self.entries if n == top or n.startswith(top + ".")]:
                self._forget(name)

    def _forget(self, name: str) -> None:
        entry = self.entries.pop(name)
        for version in (entry.current, entry.old):
            if version is not None:
                forget_version(version)
        if sys.modules.get(name) is entry.proxy:
            del sys.modules[name]

    def is_managed(self, name: str) -> bool:
        """True for a module under a managed top-level name."""
        return name.partition(".")[0] in self.roots

    def locate(self, name: str) -> tuple[Path, bool] | None:
        """The source file of a managed module and whether it is a package, or None."""
        root = self.roots.get(name.partition(".")[0])
        if root is None:
            return None
        base = root.joinpath(*name.split("."))
        package = base / "__init__.py"
        if package.is_file():
            return package, True
        module = base.with_suffix(".py")
        if module.is_file():
            return module, False
        return None

    # -- the import hook ------------------------------------------------------------------

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Answer for managed modules only."""
        if not self.is_managed(fullname):
            return None
        found = self.locate(fullname)
        if found is None:
            return None
        file, is_package = found
        loader = _Loader(self, fullname, str(file))
        spec = importlib.machinery.ModuleSpec(
            fullname, loader, origin=str(file), is_package=is_package
        )
        spec.has_location = True
        if is_package:
            spec.submodule_search_locations = [str(file.parent)]
        return spec

    def proxy_of(self, name: str) -> ModuleProxy:
        """The stable proxy of the managed module ``name``.

        Raises:
            UnknownModule: ``name`` is not under any application source root.
        """
        if not self.is_managed(name):
            raise UnknownModule(name, "is not under any application source root (add_path)")
        return self.entry_for(name).proxy

    def root_of(self, top: str) -> Path | None:
        """The source root a managed top-level name is loaded from, or None."""
        return self.roots.get(top)

    def entry_of(self, name: str) -> ModuleEntry | None:
        """The entry of ``name``, or None if the table holds none."""
        return self.entries.get(name)

    def entry_for(self, name: str) -> ModuleEntry:
        """The entry of ``name``, created empty if new."""
        entry = self.entries.get(name)
        if entry is None:
            entry = self.entries[name] = ModuleEntry(name)
        return entry

    def first_load(self, entry: ModuleEntry, path: Path) -> None:
        """Build the first version of a module being imported."""
        version = self._build(entry, _read(entry.name, path), path, from_file=True)
        self.set_current(entry, version)

    # -- loading --------------------------------------------------------------------------

    def load(self, name: str, source: str | Path | None = None) -> ModuleVersion:
        """Load a new version of ``name``: it becomes current, the former current old.

        Args:
            name: the dotted module name (managed).
            source: the new source text, or a file to read it from; by default the
                module's file under its root, read again.

        Raises:
            NotPurged: an old version still exists; nothing changed.
            ModuleLoadError: the new version does not compile or its body raised; nothing
                changed.
            UnknownModule: ``name`` is not under a managed root.
        """
        first = self.check_loadable(name)
        if first and source is None:
            return self._import(name)  # never imported: through the hook, parents first
        path, text, from_file = self._source_of(name, source)
        entry = self.entry_for(name)
        version = self._build(entry, text, path, from_file=from_file)
        self.make_current(entry, version, first=first)
        return version

    def check_loadable(self, name: str) -> bool:
        """Refuse a load that cannot happen; True when ``name`` was never published.

        Raises:
            UnknownModule: ``name`` is not under a managed root.
            NotPurged: an old version still exists.
        """
        if not self.is_managed(name):
            raise UnknownModule(name, "is not under any application source root (add_path)")
        entry = self.entries.get(name)
        if entry is not None and entry.old is not None:
            raise NotPurged(name)
        return entry is None or sys.modules.get(name) is not entry.proxy

    def make_current(self, entry: ModuleEntry, version: ModuleVersion, *, first: bool) -> None:
        """A built version becomes current, the former current old (publish a new module)."""
        entry.old = entry.current
        self.set_current(entry, version)
        if first:
            self._publish(entry)

    def build_detached(self, name: str, text: str, path: Path) -> ModuleVersion:
        """Build a version of ``name`` from the text of the file ``path``, outside the table.

        Its body runs (with ``sys.modules[name]`` pointing at it meanwhile); nothing the
        table holds changes.

        Raises:
            ModuleLoadError: it does not compile or its body raised (file and line named).
        """
        scratch = ModuleEntry(name)  # not in the table
        return self._build(scratch, text, path, from_file=True)

    def reinstate_old(self, entry: ModuleEntry) -> None:
        """The old version (there is one) becomes current again, the old slot empty."""
        old = entry.old
        assert old is not None
        entry.old = None
        self.set_current(entry, old)

    def unpublish(self, name: str) -> None:
        """Forget the entry of ``name`` and take its proxy out of ``sys.modules``/its parent."""
        entry = self.entries.pop(name, None)
        if entry is None:
            return
        if sys.modules.get(name) is entry.proxy:
            del sys.modules[name]
        parent, _, child = name.rpartition(".")
        holder = sys.modules.get(parent) if parent else None
        if holder is not None and getattr(holder, child, None) is entry.proxy:
            delattr(holder, child)

    def _source_of(self, name: str, source: str | Path | None) -> tuple[Path, str, bool]:
        if isinstance(source, Path):
            return source, _read(name, source), True
        located = self.locate(name)
        if source is None:
            if located is None:
                raise UnknownModule(name, "has no source file under its root")
            return located[0], _read(name, located[0]), True
        return (located[0] if located is not None else Path(f"<{name}>")), source, False

    def _import(self, name: str) -> ModuleVersion:
        __import__(name)
        entry = self.entries[name]
        assert entry.current is not None
        return entry.current

    def _build(
        self, entry: ModuleEntry, text: str, path: Path, *, from_file: bool
    ) -> ModuleVersion:
        is_package = path.name == "__init__.py"
        loader = _Loader(self, entry.name, str(path))
        synthetic = None if from_file else _free_source_name(entry, path)
        return build_version(
            entry.name, text, path, is_package=is_package, loader=loader, synthetic=synthetic
        )

    def set_current(self, entry: ModuleEntry, version: ModuleVersion) -> None:
        """Make ``version`` the current one of ``entry`` (the proxy takes its import data)."""
        entry.current = version
        proxy = entry.proxy
        module = version.module
        for attr in ("__spec__", "__loader__", "__file__", "__package__", "__doc__"):
            object.__setattr__(proxy, attr, getattr(module, attr, None))
        if version.is_package:
            object.__setattr__(proxy, "__path__", module.__path__)

    def _publish(self, entry: ModuleEntry) -> None:
        """Make a module first loaded from a given source importable (parents first)."""
        parent, _, child = entry.name.rpartition(".")
        if parent:
            __import__(parent)
        sys.modules[entry.name] = entry.proxy
        if parent:
            setattr(sys.modules[parent], child, entry.proxy)

    def delete(self, name: str) -> bool:
        """Make the current version old; the module has no current version until loaded.

        Returns:
            False (changing nothing) if it is not loaded or already has an old version.
        """
        entry = self.entries.get(name)
        if entry is None or entry.current is None or entry.old is not None:
            return False
        entry.old = entry.current
        entry.current = None
        return True

    # -- old code -------------------------------------------------------------------------

    def check_process_code(self, pid: Pid, name: str) -> bool:
        """True when ``pid`` runs old code of ``name`` (a frame of its stack is in it)."""
        entry = self.entries.get(name)
        if entry is None or entry.old is None:
            return False
        return _runs_in(pid, entry.old.module.__dict__)

    def processes_in_old_code(self, name: str) -> list[Pid]:
        """Every live process running old code of ``name``."""
        entry = self.entries.get(name)
        if entry is None or entry.old is None:
            return []
        old_globals = entry.old.module.__dict__
        return [pid for pid in _live_processes() if _runs_in(pid, old_globals)]

    def soft_purge(self, name: str, unchanged: Mapping[Pid, object] | None = None) -> bool:
        """Drop the old version unless a process runs it.

        ``unchanged`` maps processes already found not to run it to the token of the
        receive they were parked in then (``kernel.parked_tokens``): one still parked
        there has not run since, and is not looked at again.

        Returns:
            True if there is no old version any more (also when there was none); False,
            changing nothing, while a process runs it.
        """
        entry = self.entries.get(name)
        if entry is None or entry.old is None:
            return True
        old_globals = entry.old.module.__dict__
        if unchanged:
            live = _live_processes()
            looked = unchanged.get
            lingers = any(
                (token is None or looked(pid) is not token) and _runs_in(pid, old_globals)
                for pid, token in zip(live, kernel.parked_tokens(live), strict=True)
            )
        else:
            lingers = any(_runs_in(pid, old_globals) for pid in _live_processes())
        if lingers:
            self._tell_watchers(name)
            return False
        self._drop_old(entry)
        return True

    def watch_old_code(self, name: str, pid: Pid, *, watch: bool = True) -> None:
        """``pid`` gets ``("old_code_lingers", name)`` at each refused soft purge of ``name``."""
        watchers = [p for p in self.watchers.get(name, []) if p is not pid and kernel.is_alive(p)]
        if watch:
            watchers.append(pid)
        if watchers:
            self.watchers[name] = watchers
        else:
            self.watchers.pop(name, None)

    def _tell_watchers(self, name: str) -> None:
        watchers = self.watchers.get(name)
        if not watchers:
            return
        alive = [pid for pid in watchers if kernel.is_alive(pid)]
        self.watchers[name] = alive
        for pid in alive:
            kernel.send(pid, ("old_code_lingers", name))

    async def purge(self, name: str) -> bool:
        """Kill every process running old code of ``name`` (reason ``killed``), then drop it.

        A caller that runs the old code itself is killed last, once the version is dropped
        (the call then does not return: the caller ends ``killed``).

        Returns:
            True if at least one process was killed.
        """
        entry = self.entries.get(name)
        old = entry.old if entry is not None else None
        if entry is None or old is None:
            return False
        victims = self.processes_in_old_code(name)
        me = _caller()
        others = [pid for pid in victims if pid is not me]
        if others:
            others = await _notice_and_wait(others, name, old.module.__dict__)
        if others:
            await _kill_and_wait(others)
        if entry.old is old:  # a purge that ran meanwhile may have dropped it (and loaded)
            self._drop_old(entry)
        if me is not None and me in victims:  # the caller runs old code too: it goes last
            kernel.exit(me, kernel.KILL)
        return bool(others)

    def _drop_old(self, entry: ModuleEntry) -> None:
        old = entry.old
        entry.old = None
        if old is not None:
            forget_version(old)

    # -- introspection and dispatch -------------------------------------------------------

    def resolve(self, name: str) -> types.ModuleType:
        """The current version of ``name`` (behaviour dispatch goes through here).

        Raises:
            UnknownModule: the module was deleted and not loaded again.
        """
        entry = self.entries.get(name)
        if entry is None:
            module = sys.modules.get(name)
            if module is None:
                __import__(name)
                entry = self.entries.get(name)
                if entry is None:
                    return sys.modules[name]
            else:
                return module
        current = entry.current
        if current is None:
            raise UnknownModule(name, "has no current version (deleted)")
        return current.module

    def which_versions(self, name: str) -> list[VersionInfo]:
        """The versions of ``name`` in memory: current first, then old."""
        entry = self.entries.get(name)
        if entry is None:
            return []
        return [
            VersionInfo(name, slot, version.vsn, version.path, version.loaded_at)
            for slot, version in (("current", entry.current), ("old", entry.old))
            if version is not None
        ]

    def all_loaded(self) -> list[VersionInfo]:
        """Every version of every managed module, sorted by module name."""
        return [info for name in sorted(self.entries) for info in self.which_versions(name)]

    def source_changed(self, name: str) -> bool:
        """True unless the module's file holds exactly the source of its current version.

        Raises:
            UnknownModule: not managed, or no source file under its root.
        """
        entry = self.entries.get(name)
        located = self.locate(name)
        if located is None:
            raise UnknownModule(name, "has no source file under its root")
        if entry is None or entry.current is None:
            return True
        return digest_of(_read(name, located[0])) != entry.current.digest

    def get_vsn(self, name: str) -> object:
        """The current version's vsn.

        Raises:
            UnknownModule: not loaded.
        """
        entry = self.entries.get(name)
        if entry is None or entry.current is None:
            raise UnknownModule(name)
        return entry.current.vsn


def _free_source_name(entry: ModuleEntry, path: Path) -> str:
    """The file name of a version built from a given text, for its tracebacks.

    A module has at most two versions, so two names per module are enough: the new one
    takes the name the current version does not use. (Every distinct file name given to
    ``compile`` stays in memory for good, so a name per load would grow without end.)
    """
    names = [f"{path} <source {slot}>" for slot in (1, 2)]
    current = entry.current
    if current is not None and current.synthetic_filename == names[0]:
        return names[1]
    return names[0]


def _read(name: str, path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ModuleLoadError(name, str(path), None, f"is not UTF-8 text ({exc})") from None


def _runs_in(pid: Pid, module_globals: dict[str, object]) -> bool:
    for code_globals in kernel.process_globals(pid):  # noqa: SIM110 - any() costs a generator
        if code_globals is module_globals:
            return True
    return False


def _live_processes() -> list[Pid]:
    try:
        return kernel.processes()
    except ProcessError:  # no node is running: no process can run old code
        return []


def _caller() -> Pid | None:
    try:
        return kernel.self()
    except NoProcessError:
        return None


async def _notice_and_wait(
    victims: list[Pid], name: str, old_globals: dict[str, object]
) -> list[Pid]:
    """Tell the victims that set a purge notice; the ones still in the old code after."""
    ending: list[Pid] = []
    leaving: list[anyio.Event] = []
    for pid in victims:
        notice = kernel.get_label(pid, PURGE_NOTICE_LABEL)
        if not callable(notice):
            continue
        try:
            left = notice(name)
        except Exception:
            logger.exception("purge of %s: the purge notice of %r failed", name, pid)
            continue
        if isinstance(left, anyio.Event):
            leaving.append(left)
        else:
            ending.append(pid)
    if ending or leaving:
        with anyio.move_on_after(PURGE_NOTICE_TIMEOUT):
            for event in leaving:
                await event.wait()
            await kernel.wait_ended(ending)
    return [pid for pid in victims if kernel.is_alive(pid) and _runs_in(pid, old_globals)]


async def _kill_and_wait(victims: list[Pid]) -> None:
    for pid in victims:
        kernel.exit(pid, kernel.KILL)
    await kernel.wait_ended(victims)


def top_level_names(root: Path) -> list[str]:
    """The top-level packages and modules found in the directory ``root``."""
    names = []
    for item in sorted(root.iterdir()):
        if item.is_dir() and (item / "__init__.py").is_file() and item.name.isidentifier():
            names.append(item.name)
        elif item.suffix == ".py" and item.stem.isidentifier():
            names.append(item.stem)
    return names


#: The code server of this OS process.
code_server = CodeServer()


#: The current version of a module: what dispatch by module name goes through (the layers
#: above depend on the code server, never the reverse). A module the code server does not
#: manage is whatever ``sys.modules`` holds, imported on first use.
resolve = code_server.resolve
