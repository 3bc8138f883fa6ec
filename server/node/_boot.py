"""A node's life: boot the permanent release, serve, restart into it when an install asks.

``run_node`` is the node's first process. It:

1. installs the embedded release the first time a root is used (the source tree's
   ``[node] release``, built into a package and unpacked like any other, then recorded as
   the permanent release; it is signed with a key made for that one build and checked
   against it, since the node's own sources need no other vouching);
2. boots the **permanent** release of RELEASES: an installed but not permanent release is
   thereby rolled back by any restart, as in OTP;
3. starts the application controller, the release handler under its own supervisor (so a
   crashed handler is started again, reading RELEASES again; with the source tree's
   ``[node] trusted_keys``, after a WARNING at boot when there are none) and (when given)
   the control server, and waits for ``("stop",)``, ``("reboot", reason)`` or the controller's end;
4. on ``reboot`` (an install failed after a step that cannot be undone) stops everything,
   forgets every application module, and boots the permanent release again in place.
"""

from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server import code_server, kernel
from server.errors import ReleaseError
from server.net import http_server
from server.net.http_server import HttpDefaults
from server.release import handler
from server.release.boot import boot_release, parse_release_name
from server.release.installed import read_installed
from server.release.package import build_package
from server.release.releases_file import (
    AppEntry,
    ReleaseEntry,
    ReleasesFile,
    read_releases,
    write_releases,
)
from server.release.signature import TrustedKeys, announce_policy, public_key_text
from server.release.unpack import unpack_package
from server.spec.sys_config import HttpSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.kernel import Pid, Ref
    from server.release.source_tree import SourceTree

__all__ = ["install_embedded", "run_node"]

logger = logging.getLogger("server.release")


def install_embedded(root: Path, tree: SourceTree, release: str) -> ReleasesFile:
    """Install the source tree's release ``name-vsn`` into an empty root, as permanent.

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
    entry = ReleaseEntry(
        name=name,
        vsn=vsn,
        status="permanent",
        applications=[
            AppEntry(name=app, vsn=spec.vsn, lib_dir=str(lib.relative_to(root)))
            for app, (spec, lib) in unpacked.apps.items()
        ],
    )
    record = ReleasesFile(releases=[entry], permanent_history=[vsn])
    write_releases(root, record)
    logger.info("embedded release %s %s installed as permanent", name, vsn)
    return record


async def run_node(
    root: Path,
    tree: SourceTree | None,
    embedded: str | None,
    services: list[Callable[[Path], Awaitable[Pid]]] | None = None,
    on_booted: Callable[[str], None] | None = None,
    *,
    unpack_timeout: float = handler.DEFAULT_UNPACK_TIMEOUT,
) -> object:
    """Boot and serve until ``("stop",)``; returns None then, else the controller's reason.

    ``unpack_timeout`` is how long the release handler lets an unpack run before it answers
    the caller with an error (``handler.HandlerConfig``).

    Raises:
        ReleaseError: the root has no release and no embedded one is named.
    """
    kernel.trap_exit(True)
    settings = tree.sys_config.node.http if tree is not None else HttpSettings()
    http_server.configure(HttpDefaults(**settings.model_dump()))
    trusted = (
        TrustedKeys(tuple(tree.sys_config.node.trusted_keys)) if tree is not None else TrustedKeys()
    )
    announce_policy(trusted)
    while True:
        record = read_releases(root)
        if record is None:
            if tree is None or embedded is None:
                raise ReleaseError(
                    f"{root} has no releases/RELEASES and no embedded release is named: "
                    "set [node] release in sys.config"
                )
            record = install_embedded(root, tree, embedded)
        permanent = record.permanent
        installed = read_installed(root, permanent.vsn)
        logger.info("booting the permanent release %s %s", permanent.name, permanent.vsn)
        started: list[Pid] = []
        controller_pid = await boot_release(
            installed.view, installed.lib_dirs, installed.sys_config.env
        )
        started.append(controller_pid)
        config = handler.HandlerConfig(
            root, permanent.vsn, kernel.self(), trusted_keys=trusted, unpack_timeout=unpack_timeout
        )
        started.append(await handler.start_supervisor(config))
        started.extend([await service(root) for service in services or []])
        # what the boot built lives as long as the node: keep it out of the cyclic GC's
        # full collections, which otherwise stall every process for tens of milliseconds
        gc.freeze()
        if on_booted is not None:
            on_booted(permanent.vsn)
        message = await _wait_for_the_end(kernel.monitor(controller_pid))
        # the control server goes last, so a ``stop`` asked through it gets its reply
        core, extra = started[:2], started[2:]
        if type(message) is kernel.DownMessage:
            await _teardown(core[1:])
            await _teardown(extra)
            _forget_code()
            return message.reason
        await _teardown(core)
        await _teardown(extra)
        _forget_code()
        if message == ("stop",):
            return None
        assert isinstance(message, tuple)
        logger.error("restarting the node into its permanent release: %s", message[1])


async def _wait_for_the_end(ref: Ref) -> object:
    def wanted(m: object) -> bool:
        if type(m) is kernel.DownMessage:
            return m.ref is ref
        return m == ("stop",) or (isinstance(m, tuple) and m[:1] == ("reboot",))

    return await kernel.receive(wanted)


async def _down(ref: Ref) -> None:
    await kernel.receive(lambda m: type(m) is kernel.DownMessage and m.ref is ref)


async def _teardown(pids: list[Pid]) -> None:
    """Stop what the boot started, in reverse order."""
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
