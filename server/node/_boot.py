"""A node's life: boot the permanent release, serve, restart into it when an install asks.

``run_node`` is the node's first process. It:

1. installs the embedded release the first time a root is used (the source tree's
   ``[node] release``, built into a package and unpacked like any other, then recorded as
   the permanent release; it is signed with a key made for that one build and checked
   against it, since the node's own sources need no other vouching);
2. boots the **permanent** release of RELEASES: an installed but not permanent release is
   thereby rolled back by any restart, as in OTP;
3. starts the event-loop lag sampler (``server.observer.loop_lag``, for the node's whole
   life), the application controller, the release handler under its own supervisor (so a
   crashed handler is started again, reading RELEASES again; with the source tree's
   ``[node] trusted_keys``, after a WARNING at boot when there are none), the observer
   (with ``[node.observer]``) and (when given) the control server, and waits for
   ``("stop",)``, ``("reboot", reason)`` or the controller's end;
4. on ``reboot`` (an install failed after a step that cannot be undone) stops everything,
   forgets every application module, and boots the permanent release again in place.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server import cluster, code_server, dist, kernel, observer
from server.errors import ReleaseError
from server.net import http_server
from server.net.http_server import HttpDefaults
from server.node._config import node_config
from server.node._env_layers import ENV_LAYERS_LABEL, NodeEnv
from server.observer import loop_lag
from server.release import gc_policy, handler
from server.release.boot import boot_release, parse_release_name
from server.release.bundle import DEPS_DIR
from server.release.installed import read_installed
from server.release.package import build_package
from server.release.releases_file import FILE_NAME as RELEASES_FILE
from server.release.releases_file import (
    AppEntry,
    ReleaseEntry,
    ReleasesFile,
    read_releases,
    take_next_boot,
    write_releases,
)
from server.release.signature import TrustedKeys, announce_policy, public_key_text
from server.release.unpack import UnpackedRelease, unpack_package
from server.spec.env_schema import check_release_env
from server.spec.sys_config import (
    SysConfig,
    env_from_environ,
    merge_env,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from server.kernel import Pid, Ref
    from server.release.source_tree import SourceTree

__all__ = [
    "RESTART_NEW_PROCESS",
    "first_record",
    "install_embedded",
    "install_package",
    "run_node",
    "stop_in_reverse",
]

logger = logging.getLogger("server.release")

#: What ``run_node`` returns when an install by restart asks for a new OS process: its
#: caller (the CLI) replaces the process with a new ``server run`` (the same pid), whose
#: boot boots the release installed.
RESTART_NEW_PROCESS = ("restart_new_process",)


def install_embedded(root: Path, tree: SourceTree, release: str) -> ReleasesFile:
    """Build the source tree's release ``name-vsn`` and unpack it into an empty root.

    Returns the record that makes it permanent; the boot writes it, and removes it again
    when the release fails to start, so a first boot that fails leaves no RELEASES behind
    (the next boot unpacks again, replacing what this one left).

    Raises:
        ReleaseError: the root already has a RELEASES record.
        BuildError, UnpackError, SpecError: the release cannot be built or unpacked.
    """
    if read_releases(root) is not None:
        raise ReleaseError(f"{root} already has releases installed")
    name, vsn = parse_release_name(release)
    root.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()  # for this build only: [node] trusted_keys is for others
    with tempfile.TemporaryDirectory(prefix="server-embedded-") as scratch:
        built = build_package(
            tree, name, vsn, Path(scratch), up_from=[], down_to=[], signing_key=key
        )
        own = TrustedKeys((public_key_text(key),))
        unpacked = unpack_package(built.path, root, trusted_keys=own)
    return first_record(root, unpacked)


def install_package(root: Path, package: Path, trusted: TrustedKeys) -> ReleasesFile:
    """Unpack ``package`` into a root that has no release yet (a bare machine's first boot).

    Returns the record that makes it permanent, written by the boot (and removed again if
    the release fails to start).

    Raises:
        ReleaseError: the root already has a RELEASES record.
        SignatureRefused, UnpackError, SpecError: the package was refused; nothing written.
    """
    if read_releases(root) is not None:
        raise ReleaseError(f"{root} already has releases installed")
    root.mkdir(parents=True, exist_ok=True)
    return first_record(root, unpack_package(package, root, trusted_keys=trusted))


def first_record(root: Path, unpacked: UnpackedRelease) -> ReleasesFile:
    """The RELEASES record of a root whose only release, permanent, is ``unpacked``."""
    entry = ReleaseEntry(
        name=unpacked.name,
        vsn=unpacked.vsn,
        status="permanent",
        applications=[
            AppEntry(name=app, vsn=spec.vsn, lib_dir=str(lib.relative_to(root)))
            for app, (spec, lib) in unpacked.apps.items()
        ],
    )
    return ReleasesFile(releases=[entry], permanent_history=[unpacked.vsn])


async def run_node(
    root: Path,
    tree: SourceTree | None,
    embedded: str | None,
    services: list[Callable[[Path], Awaitable[Pid]]] | None = None,
    on_booted: Callable[[str], None] | None = None,
    *,
    unpack_timeout: float | None = None,
    config: SysConfig | None = None,
    first: ReleasesFile | None = None,
    environ: Mapping[str, str] | None = None,
    read_config: Callable[[], SysConfig] | None = None,
) -> object:
    """Boot and serve until ``("stop",)``; returns None then, else why the node ended.

    ``RESTART_NEW_PROCESS`` when an install by restart asks for a new OS process, else the
    controller's exit reason.

    Args:
        root: the node's root.
        tree: the source tree the embedded release is built from (None: a package root).
        embedded: the release (``name-vsn``) to build and install when the root has none.
        services: started after the release handler (the control server), stopped last.
        on_booted: called with the booted version after each boot.
        unpack_timeout: how long the release handler lets an unpack run before it answers
            the caller with an error (None: ``[node] unpack_timeout`` of ``config``).
        config: the node's settings and env overrides (default: the tree's sys.config).
        first: the record of a release already unpacked into a root with no RELEASES
            (``install_package``); written at boot, removed again if the release fails to
            start.
        environ: the environment read for ``SERVER_CONFIG__APP__KEY`` overrides (default
            ``os.environ``).
        read_config: reads the node's sys.config again, for ``reload-config`` (default:
            ``config`` as it is).

    Env overrides, each over the one before: the application spec's ``env``, the release's
    sys.config, the node's ``config``, the environment.

    Raises:
        ReleaseError: the root has no release and no embedded one is named.
    """
    kernel.trap_exit(True)
    if config is None:
        config = tree.sys_config if tree is not None else node_config(root)
    from_environ = env_from_environ(os.environ if environ is None else environ)
    first_config = config
    node_env = NodeEnv(
        root,
        read_config if read_config is not None else (lambda: first_config),
        from_environ,
    )
    kernel.set_label(ENV_LAYERS_LABEL, node_env)
    http_server.configure(HttpDefaults(**config.node.http.model_dump()))
    gc_policy.configure(gc_policy.GcPolicy.of(config.node.gc.model_dump()))
    trusted = TrustedKeys(tuple(config.node.trusted_keys))
    announce_policy(trusted)
    # the lag sampler measures the node's whole life, across the reboots of its release
    sampler = await loop_lag.start_link()
    # the node's name in a cluster outlives the reboots of its release, as OTP's kernel does
    distribution = await dist.start_link(config.node.dist) if config.node.dist else None
    agent = await cluster.start_agent(root) if distribution is not None else None
    pacer = gc_policy.start_pacing()  # the young collections, at the policy's pace
    try:
        return await _boot_loop(
            root,
            tree,
            embedded,
            services,
            on_booted,
            unpack_timeout,
            config,
            first,
            node_env,
            trusted,
        )
    finally:
        if pacer is not None:
            pacer.stop()
        with anyio.CancelScope(shield=True):
            await stop_in_reverse([p for p in (sampler, distribution, agent) if p is not None])


async def _boot_loop(
    root: Path,
    tree: SourceTree | None,
    embedded: str | None,
    services: list[Callable[[Path], Awaitable[Pid]]] | None,
    on_booted: Callable[[str], None] | None,
    unpack_timeout: float | None,
    config: SysConfig,
    first: ReleasesFile | None,
    node_env: NodeEnv,
    trusted: TrustedKeys,
) -> object:
    while True:
        record = read_releases(root)
        unwritten = record is None
        if record is None:
            if first is not None:
                record = first
            elif tree is not None and embedded is not None:
                record = install_embedded(root, tree, embedded)
            else:
                raise ReleaseError(
                    f"{root} has no releases/RELEASES and no release to install: pass "
                    "--release <package>.tar.gz, or set [node] release in sys.config"
                )
        permanent = record.permanent
        ordered = take_next_boot(root)  # an install by restart: this boot only
        if ordered is not None and (entry := record.get(ordered)) is not None:
            permanent = entry  # booted, not permanent: a restart before make_permanent undoes it
            logger.info("booting release %s %s (installed by restart)", entry.name, entry.vsn)
        else:
            logger.info("booting the permanent release %s %s", permanent.name, permanent.vsn)
        installed = read_installed(root, permanent.vsn)
        deps = root / "releases" / permanent.vsn / DEPS_DIR  # its bundled distributions
        if deps.is_dir() and str(deps) not in sys.path:
            sys.path.insert(0, str(deps))
        started: list[Pid] = []
        layers = node_env.release_layers(permanent.vsn, installed.sys_config.env, config.env)
        for warning in check_release_env(
            {app: (spec.env_schema, spec.env) for app, spec in installed.view.apps.items()},
            layers,
            f"release {permanent.name} {permanent.vsn}",
        ):
            logger.warning("%s", warning)
        env = merge_env(*(tables for _, tables in layers))
        node_env.remember({a: dict(spec.env) for a, spec in installed.view.apps.items()}, layers)
        if unwritten:
            write_releases(root, record)
        try:
            controller_pid = await boot_release(installed.view, installed.lib_dirs, env)
        except BaseException:
            if unwritten:  # a failed first boot leaves no release behind to boot again
                (root / "releases" / RELEASES_FILE).unlink(missing_ok=True)
            raise
        if unwritten:
            logger.info("release %s %s installed as permanent", permanent.name, permanent.vsn)
        started.append(controller_pid)
        handler_config = handler.HandlerConfig(
            root,
            permanent.vsn,
            kernel.self(),
            trusted_keys=trusted,
            unpack_timeout=(
                config.node.unpack_timeout if unpack_timeout is None else unpack_timeout
            ),
            local_env=node_env.local_env,  # the same dict: a config reload updates it
        )
        started.append(await handler.start_supervisor(handler_config))
        if config.node.observer is not None:  # the web view, [node.observer] of sys.config
            started.append(await observer.start_supervisor(config.node.observer, kernel.self()))
        started.extend([await service(root) for service in services or []])
        # what the boot built lives as long as the node: keep it out of the cyclic GC's
        # full collections, which otherwise stall every process for tens of milliseconds
        gc_policy.settle("boot", full=True)
        if on_booted is not None:
            on_booted(permanent.vsn)
        message = await _wait_for_the_end(kernel.monitor(controller_pid))
        # the control server goes last, so a ``stop`` asked through it gets its reply
        core, extra = started[:2], started[2:]
        if type(message) is kernel.DownMessage:
            await stop_in_reverse(core[1:])
            await stop_in_reverse(extra)
            _forget_code()
            return message.reason
        await stop_in_reverse(core)
        await stop_in_reverse(extra)
        _forget_code()
        if message == ("stop",):
            return None
        assert isinstance(message, tuple)
        if message[0] == "restart_new_process":
            return RESTART_NEW_PROCESS
        logger.error("restarting the node into its permanent release: %s", message[1])


async def _wait_for_the_end(ref: Ref) -> object:
    def wanted(m: object) -> bool:
        if type(m) is kernel.DownMessage:
            return m.ref is ref
        return m == ("stop",) or (
            isinstance(m, tuple) and m[:1] in (("reboot",), ("restart_new_process",))
        )

    return await kernel.receive(wanted)


async def _down(ref: Ref) -> None:
    await kernel.receive(lambda m: type(m) is kernel.DownMessage and m.ref is ref)


async def stop_in_reverse(pids: list[Pid]) -> None:
    """Stop what a boot started (each with ``shutdown``, waiting for its end), last first."""
    for pid in reversed(pids):
        if not kernel.is_alive(pid):
            continue
        ref = kernel.monitor(pid)
        kernel.unlink(pid)
        kernel.exit(pid, kernel.SHUTDOWN)
        await _down(ref)
    kernel.flush(lambda m: type(m) is kernel.ExitMessage)


def _forget_code() -> None:
    """Forget every application module: the next boot loads its release's code afresh."""
    code_server.forget_all()
