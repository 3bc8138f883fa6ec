"""``server start --nodes N``: N nodes of one release on one machine, each under its heart.

A Python node runs one event loop on one core; N nodes use N cores. They listen on the
same HTTP port (``SO_REUSEPORT``: the kernel spreads the connections) and form one cluster
over the distribution, so ``server cluster ...`` rolls a release out across them.

How this works:

1. The root ``R`` holds ``nodes.json`` (the node roots ``node-1`` ... ``node-N`` and their
   names, written before any node starts, so ``server stop --root R`` finds every one even
   after a start that failed midway), ``cookie`` (0600, made once, when the user's
   sys.config names none) and, for a release named ``NAME-VSN`` rather than a package, the
   package built from the source tree of the current directory in ``packages/``.
2. Each node root gets its own sys.config (0600: it holds the cookie), the user's one plus
   what ``server.heart._layer`` sets (its name, its socket, ``reuse_port``, ``connect``),
   and is set up from the package by its first boot, as ``server start`` does for one root.
3. The hearts start at once, in parallel (``start_detached``, each returning when its node
   serves); then every pair of nodes is connected through the control socket's
   ``connect`` (``[node.dist] connect`` does the same by itself at each boot, so a node
   restarted by its heart rejoins). ``start_nodes`` returns once all N serve and are
   connected; if one fails, the ones started are stopped again and the error names it.
4. Stopping sends SIGTERM to each node's heart (it passes it on: the node stops its
   applications in reverse order; a heart between a crash and a restart starts nothing
   more) and waits for every heart to end.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import select
import signal
import tarfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from server.control import request_sync
from server.errors import HeartAlreadyRunning, LocalClusterError, ServerError
from server.heart._detach import start_detached
from server.heart._files import RootLock
from server.heart._layer import node_layer, node_names, stem_of, to_toml
from server.release.boot import parse_release_name
from server.spec.files import load_toml
from server.spec.sys_config import read_sys_config

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MANIFEST",
    "LocalNode",
    "StoppedNode",
    "local_node_roots",
    "start_nodes",
    "stop_nodes",
]

MANIFEST: Final = "nodes.json"
"""The file of a root of ``server start --nodes N`` that lists its nodes."""
_COOKIE: Final = "cookie"
_LISTEN: Final = "0A"  # TCP_LISTEN in /proc/<pid>/net/tcp


@dataclass(frozen=True, slots=True)
class LocalNode:
    """One node started by ``start_nodes``, serving and connected to the others."""

    name: str
    root: Path
    heart_pid: int
    node_pid: int
    http_ports: tuple[int, ...]
    status: str  # what the node said when it was ready ("serving release 1.0.0")


@dataclass(frozen=True, slots=True)
class StoppedNode:
    """One node root of ``stop_nodes``: its heart's pid, or None when none ran."""

    root: Path
    heart_pid: int | None


def local_node_roots(root: Path) -> list[Path] | None:
    """The node roots of a root of ``server start --nodes N``; None for any other root."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return [root / str(entry["root"]) for entry in manifest.get("nodes", [])]


def start_nodes(
    root: Path,
    count: int,
    *,
    release: str | None = None,
    config: Path | None = None,
    log_args: Sequence[str] = ("--log-level", "INFO"),
    serve_timeout: float = 120.0,
) -> list[LocalNode]:
    """Start ``count`` nodes under ``root`` (``root/node-1`` ...), each under its heart.

    Args:
        root: the folder of the nodes (created when missing).
        count: how many nodes (1 or more).
        release: a package (``<name>-<vsn>.tar.gz``, its ``.sha256`` beside it), or a
            release ``name-vsn`` of the source tree in the current directory (default: its
            ``[node] release``), built into ``root/packages``.
        config: the user's sys.config for every node (default: the package's).
        log_args: the logging options of every node (``--log-level``, ``--log-format``).
        serve_timeout: how long each node may take to serve.

    Returns:
        The nodes, in order, once every one serves and every pair is connected.

    Raises:
        LocalClusterError: refused (a bad count, ``root`` is a node's root, a node of it
            still runs), or a node did not start or connect (those started are stopped).
        SpecError: the sys.config is malformed.
        BuildError: the release could not be built from the source tree.
    """
    root = Path(root).resolve()
    if count < 1:
        raise LocalClusterError(root, f"--nodes takes a count of 1 or more, not {count}")
    if (root / "releases").exists() or (root / "run" / "heart.lock").exists():
        raise LocalClusterError(
            root, "it is a node's own root: give --nodes a folder of its own (R/node-1 ...)"
        )
    root.mkdir(parents=True, exist_ok=True)
    running = _running(root)
    if running:
        first = running[0]
        raise LocalClusterError(
            root,
            f"{first.root.name} still runs (heart pid {first.heart_pid}): "
            f"`server stop --root {root}` first",
        )
    package = _package(root, release, config)
    tables = load_toml(config) if config is not None else _packaged_tables(package)
    if config is not None:
        read_sys_config(config)  # a malformed file: refused here, naming file and key
    names = node_names(stem_of(tables), count)
    cookie = _cookie(root, tables)
    roots = [root / f"node-{i}" for i in range(1, count + 1)]
    _write_manifest(root, roots, names)
    for index, node_root in enumerate(roots, start=1):
        node_root.mkdir(exist_ok=True)
        _write_private(node_root / "sys.config", to_toml(node_layer(tables, index, names, cookie)))
        read_sys_config(node_root / "sys.config")  # what was written reads back valid
    try:
        started = _start_all(roots, package, log_args, serve_timeout)
        _connect_all(roots, names)
        return [
            LocalNode(
                name,
                node_root,
                heart.heart_pid,
                heart.node_pid,
                _http_ports(node_root),
                heart.status,
            )
            for name, node_root, heart in zip(names, roots, started, strict=True)
        ]
    except BaseException:
        with contextlib.suppress(LocalClusterError):  # the first error is the one to tell
            stop_nodes(root)
        raise


def stop_nodes(root: Path, *, timeout: float = 60.0) -> list[StoppedNode]:
    """Stop every node of a root of ``server start --nodes N``; return once all have ended.

    Raises:
        LocalClusterError: ``root`` is not such a root, or a heart still runs after
            ``timeout`` seconds.
    """
    root = Path(root).resolve()
    roots = local_node_roots(root)
    if roots is None:
        raise LocalClusterError(root, f"no {MANIFEST}: not a root of `server start --nodes N`")
    running = {entry.root: entry for entry in _running(root)}
    handles: dict[Path, int] = {}
    for node_root, entry in running.items():
        assert entry.heart_pid is not None
        with contextlib.suppress(ProcessLookupError):
            handles[node_root] = os.pidfd_open(entry.heart_pid)
            os.kill(entry.heart_pid, signal.SIGTERM)
    try:
        deadline = time.monotonic() + timeout
        waiting = dict(handles)
        while waiting and (remaining := deadline - time.monotonic()) > 0:
            ended, _, _ = select.select(list(waiting.values()), [], [], remaining)
            waiting = {r: fd for r, fd in waiting.items() if fd not in ended}
        if waiting:
            late = ", ".join(r.name for r in waiting)
            raise LocalClusterError(root, f"{late} still running {timeout:g} s after SIGTERM")
    finally:
        for fd in handles.values():
            os.close(fd)
    return [StoppedNode(r, running[r].heart_pid if r in running else None) for r in roots]


def _running(root: Path) -> list[StoppedNode]:
    """The node roots of ``root`` whose heart runs (found by its lock, not a pid file)."""
    found = []
    for node_root in local_node_roots(root) or []:
        if not (node_root / "run" / "heart.lock").exists():
            continue
        lock = RootLock(node_root)
        try:
            lock.acquire()
        except HeartAlreadyRunning as held:
            pid = held.heart_pid if held.heart_pid is not None else held.node_pid
            if pid is not None:
                found.append(StoppedNode(node_root, pid))
            continue
        lock.release()
    return found


def _package(root: Path, release: str | None, config: Path | None) -> Path:
    if release is not None and release.endswith(".tar.gz"):
        package = Path(release).resolve()
        if not package.is_file():
            raise LocalClusterError(root, f"no package {package}")
        return package
    from server.release.package import build_package  # only this path needs the builder
    from server.release.source_tree import SourceTree

    tree = SourceTree(Path.cwd(), config)
    wanted = release or tree.sys_config.node.release
    if wanted is None:
        raise LocalClusterError(
            root, "name a release: --release <name>-<vsn>.tar.gz, or <name>-<vsn> of this tree"
        )
    name, vsn = parse_release_name(wanted)
    return build_package(tree, name, vsn, root / "packages", up_from=[], down_to=[]).path


def _packaged_tables(package: Path) -> dict[str, Any]:
    """The ``[node]`` table of the package's own sys.config (its env applies anyway)."""
    _, vsn = parse_release_name(package.name.removesuffix(".tar.gz"))
    try:
        with tarfile.open(package, "r:gz") as archive:
            member = archive.extractfile(f"releases/{vsn}/sys.config")
            text = member.read().decode("utf-8") if member is not None else ""
        node = tomllib.loads(text).get("node", {})
    except (OSError, KeyError, tarfile.TarError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        node = {}  # the unpack checks the package and says what is wrong with it
    return {"node": node} if isinstance(node, dict) else {}


def _cookie(root: Path, tables: dict[str, Any]) -> str:
    given = ((tables.get("node") or {}).get("dist") or {}).get("cookie")
    if isinstance(given, str) and given:
        return given
    path = root / _COOKIE
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    cookie = secrets.token_urlsafe(32)
    _write_private(path, cookie + "\n")
    return cookie


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    temporary.replace(path)


def _write_manifest(root: Path, roots: list[Path], names: list[str]) -> None:
    entries = [{"name": n, "root": r.name} for n, r in zip(names, roots, strict=True)]
    _write_private(root / MANIFEST, json.dumps({"nodes": entries}, indent=2) + "\n")


def _start_all(
    roots: list[Path], package: Path, log_args: Sequence[str], serve_timeout: float
) -> list[Any]:
    start_args = ["--release", str(package)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(roots)) as pool:
        futures = [
            pool.submit(
                start_detached,
                node_root,
                log_args=log_args,
                start_args=start_args,
                serve_timeout=serve_timeout,
            )
            for node_root in roots
        ]
        concurrent.futures.wait(futures)
    for node_root, future in zip(roots, futures, strict=True):
        error = future.exception()
        if isinstance(error, ServerError):
            raise LocalClusterError(node_root.parent, f"{node_root.name} did not start: {error}")
        if error is not None:
            raise error
    return [future.result() for future in futures]


def _connect_all(roots: list[Path], names: list[str]) -> None:
    for i, node_root in enumerate(roots):
        socket = node_root / "run" / "control.sock"
        for peer in names[i + 1 :]:
            answer = request_sync(socket, "connect", {"node": peer}, timeout=30.0)
            if not (isinstance(answer, dict) and answer.get("connected") is True):
                raise LocalClusterError(
                    node_root.parent, f"{names[i]} could not connect to {peer}: {answer!r}"
                )


def _http_ports(node_root: Path) -> tuple[int, ...]:
    """The TCP ports the node listens on, less its distribution's (read from /proc)."""
    report = request_sync(node_root / "run" / "control.sock", "nodes", timeout=10.0)
    status = request_sync(node_root / "run" / "control.sock", "status", timeout=10.0)
    assert isinstance(report, dict)
    assert isinstance(status, dict)
    pid = status["os_pid"]
    assert isinstance(pid, int)
    return tuple(sorted(listening_ports(pid) - {report.get("port")}))


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` holds listening sockets on (Linux's /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                if len(fields) > 9 and fields[3] == _LISTEN and fields[9] in inodes:
                    ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports
