"""Every error the server raises, in one tree.

::

    ServerError
    ├── ProcessError                 the kernel and behaviours
    │   ├── NoProcessError           no current process (called outside a node's process)
    │   ├── RegistrationError        a name is taken, the pid has a name, or it is dead
    │   ├── NotRegisteredError       sending to / looking up a name nobody holds
    │   ├── NoProcError              linking to or calling a process that does not exist
    │   ├── CallError                a gen_server/sys call failed
    │   │   ├── CallTimeout          no reply in time
    │   │   └── CalleeExited         the server ended before replying
    │   ├── StartError               a behaviour's ``init`` failed or a child failed to start
    │   │   └── AlreadyStarted       the name is held by a live process
    │   ├── SystemCallError          a system message was refused or failed
    │   │   └── CodeChangeFailed     ``code_change`` raised; state untouched, still suspended
    │   ├── SupervisorError          a supervisor refused an administrative request
    │   └── HandlerError             a gen_event manager refused or failed a handler request
    │       ├── HandlerNotInstalled  no such handler in the manager
    │       ├── HandlerAlreadyInstalled  the handler id is taken in the manager
    │       └── HandlerFailed        the handler's callback raised or returned junk
    ├── CodeError                    the code server
    │   ├── NotPurged                load refused: an old version still exists
    │   ├── ModuleLoadError          a new version failed to compile or execute
    │   ├── UnknownModule            not managed, or no current version
    │   └── ModuleConflict           two source roots provide the same module
    ├── ApplicationError             the application controller
    ├── ReleaseError                 the release handler
    │   ├── NodeAlreadyRunning       another node holds this root's lock
    │   ├── BuildError               a release package or relup cannot be built
    │   ├── UnpackError              a release package was refused by unpack
    │   │   └── SignatureRefused     the node has trusted keys and the package's origin fails
    │   │       ├── UnsignedPackage      no signature file beside it
    │   │       ├── UntrustedSigner      signed by a key the node does not trust
    │   │       └── BadSignature         malformed, or does not match the package's bytes
    │   ├── SigningKeyError          a signing key file cannot be read or written
    │   ├── InstallRefused           a release operation refused; nothing changed
    │   │   └── StatusRefused        the release's status does not allow the action
    │   └── InstallFailed            failed after the point of no return (rolled back or restarting)
    ├── SpecError                    malformed specs and configuration files
    ├── NetError                     HTTP served from processes
    │   └── HttpProtocolError        the bytes received are not an acceptable HTTP/1.1 request
    ├── ControlError                 the control socket and the CLI
    │   ├── ControlSocketError       the socket's path is unusable (too long, unsafe, taken)
    │   │   └── SocketInUse          another live node answers on the socket
    │   ├── NodeNotRunning           nothing listens on the socket (the client's view)
    │   ├── ControlTimeout           the node did not answer in time
    │   ├── ConnectionLost           the node closed the connection before its reply
    │   ├── ProtocolViolation        the node sent a line that is not a valid message
    │   └── RemoteError              the node answered with an error (type, message)
    ├── ProjectError                 ``server new`` cannot create the project
    ├── HeartError                   the watchdog behind ``server start``
    │   ├── HeartAlreadyRunning      a heart, or the node of a heart that died, holds the root
    │   ├── HeartStartFailed         a detached heart ended, or said nothing, before its node
    │   └── LocalClusterError        ``server start --nodes N``: refused, or a node failed
    └── DistributionError            Erlang distribution (``server.dist``)
        ├── TermDecodeError          bytes are not a valid external term (what, at which offset)
        ├── NodeNameError            a node name is malformed, or short and long names mixed
        ├── CookieError              no usable cookie: unreadable, unsafe or malformed file
        ├── EpmdError                EPMD unreachable, or its reply is malformed
        │   └── NodeNameTaken        another node holds the name at this EPMD
        ├── HandshakeError           a handshake failed midway: bad message, lost, too slow
        │   ├── HandshakeTimeout     the setup did not finish within ``setup_timeout``
        │   └── HandshakeRefused     one side refused the connection (status, digest, name)
        │       └── SimultaneousConnect  ``nok``: the other connection between the two wins
        └── RpcError                 the other node answered an rpc with ``{badrpc, Reason}``

Exit reasons are values, never raised across processes: a process ends with a reason and
its links and monitors see that value. These exceptions are what a *caller* sees when an
operation it asked for cannot be done.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AlreadyStarted",
    "ApplicationError",
    "BadSignature",
    "BuildError",
    "CallError",
    "CallTimeout",
    "CalleeExited",
    "CallingSelf",
    "CodeChangeFailed",
    "CodeError",
    "ConnectionLost",
    "ControlError",
    "ControlSocketError",
    "ControlTimeout",
    "CookieError",
    "DistributionError",
    "EpmdError",
    "HandlerAlreadyInstalled",
    "HandlerError",
    "HandlerFailed",
    "HandlerNotInstalled",
    "HandshakeError",
    "HandshakeRefused",
    "HandshakeTimeout",
    "HealthCheckFailed",
    "HeartAlreadyRunning",
    "HeartError",
    "HeartStartFailed",
    "HttpProtocolError",
    "InstallFailed",
    "InstallRefused",
    "LocalClusterError",
    "ModuleConflict",
    "ModuleLoadError",
    "NetError",
    "NoProcError",
    "NoProcessError",
    "NodeAlreadyRunning",
    "NodeNameError",
    "NodeNameTaken",
    "NodeNotRunning",
    "NotPurged",
    "NotRegisteredError",
    "ProcessError",
    "ProjectError",
    "ProtocolViolation",
    "RegistrationError",
    "ReleaseError",
    "RemoteError",
    "RolloutError",
    "ServerError",
    "SignatureRefused",
    "SigningKeyError",
    "SimultaneousConnect",
    "SocketInUse",
    "SpecError",
    "StartError",
    "StatusRefused",
    "SupervisorError",
    "SystemCallError",
    "TermDecodeError",
    "UnknownModule",
    "UnpackError",
    "UnsignedPackage",
    "UntrustedSigner",
]


class ServerError(Exception):
    """Root of every error raised by the server."""


class ProcessError(ServerError):
    """Errors of the process runtime and the behaviours built on it."""


class NoProcessError(ProcessError):
    """A process-only operation was called outside any process."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(
            f"{operation}() must run inside a process of a running node; "
            "spawn one with kernel.spawn() or use kernel.run()"
        )


class RegistrationError(ProcessError):
    """A name could not be registered (taken, pid already named, or pid dead)."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(f"cannot register {name!r}: {why}")


class NotRegisteredError(ProcessError, LookupError):
    """No process holds the name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no process is registered as {name!r}")


class NoProcError(ProcessError):
    """The target process does not exist (reason ``noproc``)."""

    def __init__(self, target: object, operation: str) -> None:
        self.target = target
        self.operation = operation
        super().__init__(f"{operation}: no process {target}")


class CallError(ProcessError):
    """A synchronous call did not get its reply."""

    def __init__(self, server: object, request: object, message: str) -> None:
        self.server = server
        self.request = request
        super().__init__(message)


class CallTimeout(CallError, TimeoutError):
    """The server did not reply in time; a late reply is dropped."""

    def __init__(self, server: object, request: object, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            server, request, f"call to {server} timed out after {timeout:g} s: {request!r}"
        )


class CallingSelf(CallError):
    """A process called itself (OTP's ``calling_self``): it fails at once, whatever its timeout.

    Only the caller could answer, and it is waiting.
    """

    def __init__(self, server: object, request: object) -> None:
        super().__init__(
            server,
            request,
            f"call to {server} from that process itself (calling_self): {request!r}"[:500],
        )


class CalleeExited(CallError):
    """The server ended (or did not exist) before it replied; ``reason`` is its exit reason."""

    def __init__(self, server: object, request: object, reason: object) -> None:
        self.reason = reason
        super().__init__(
            server, request, f"call to {server} failed, server exited with {reason!r}: {request!r}"
        )


class StartError(ProcessError):
    """A process failed to start: its ``init`` stopped, crashed or timed out."""

    def __init__(self, what: object, reason: object) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} failed to start: {reason!r}")


class SupervisorError(ProcessError):
    """A supervisor refused an administrative request (unknown child, running, ...)."""

    def __init__(self, supervisor: object, reason: str) -> None:
        self.supervisor = supervisor
        self.reason = reason
        super().__init__(f"supervisor {supervisor}: {reason}")


class HandlerError(ProcessError):
    """A gen_event manager refused or failed a request about one of its handlers."""

    def __init__(self, manager: object, handler: object, message: str) -> None:
        self.manager = manager
        self.handler = handler
        super().__init__(f"event manager {manager}, handler {handler}: {message}")


class HandlerNotInstalled(HandlerError, LookupError):
    """The handler is not installed in the manager (OTP's ``module_not_found``)."""

    def __init__(self, manager: object, handler: object, operation: str) -> None:
        self.operation = operation
        super().__init__(
            manager, handler, f"{operation}: not installed (see gen_event.which_handlers)"
        )


class HandlerAlreadyInstalled(HandlerError):
    """The handler id is taken: install the module again under ``(module, id)``."""

    def __init__(self, manager: object, handler: object, operation: str) -> None:
        self.operation = operation
        super().__init__(
            manager,
            handler,
            f"{operation}: already installed; give another instance an id: (module, id)",
        )


class HandlerFailed(HandlerError):
    """A handler's callback raised or returned junk; ``reason`` says which."""

    def __init__(
        self, manager: object, handler: object, callback: str, reason: object, traceback_text: str
    ) -> None:
        self.callback = callback
        self.reason = reason
        self.traceback_text = traceback_text
        super().__init__(manager, handler, f"{callback} failed: {reason!r}")


class AlreadyStarted(StartError):
    """The name asked for is already held by a live process (OTP's ``already_started``)."""

    def __init__(self, what: object, name: str, pid: object) -> None:
        self.name = name
        self.pid = pid
        super().__init__(what, ("already_started", pid))


class SystemCallError(ProcessError):
    """A system message (suspend, change_code, ...) was refused or failed in the process."""

    def __init__(self, pid: object, operation: str, reason: object) -> None:
        self.pid = pid
        self.operation = operation
        self.reason = reason
        super().__init__(f"sys {operation} on {pid} failed: {reason}")


class CodeChangeFailed(SystemCallError):
    """``code_change`` raised or returned junk; the process keeps its state, suspended."""

    def __init__(self, pid: object, module: str, reason: object, traceback_text: str) -> None:
        self.module = module
        self.traceback_text = traceback_text
        super().__init__(pid, "change_code", reason)
        self.args = (f"code_change of {module} failed in {pid}: {reason!r}\n{traceback_text}",)


class CodeError(ServerError):
    """Errors of the code server (module versions, loading, purging)."""


class NotPurged(CodeError):
    """An old version still exists: purge it before loading another (OTP's ``not_purged``)."""

    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(
            f"cannot load {module}: its old version is still in memory; "
            f"soft_purge or purge {module} first"
        )


class ModuleLoadError(CodeError):
    """A new version failed to compile or to execute; nothing was changed."""

    def __init__(self, module: str, path: str, line: int | None, reason: str) -> None:
        self.module = module
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(
            f"cannot load {module} from {where}: {reason}; the running code is unchanged"
        )


class UnknownModule(CodeError, LookupError):
    """The module is not managed by the code server, or has no current version."""

    def __init__(self, module: str, why: str = "is not loaded") -> None:
        self.module = module
        super().__init__(f"module {module} {why}")


class ModuleConflict(CodeError):
    """Two application source roots provide the same top-level module."""

    def __init__(self, module: str, first: str, second: str) -> None:
        self.module = module
        super().__init__(f"module {module} is provided by both {first} and {second}")


class ApplicationError(ServerError):
    """The application controller refused a request, or an application failed to start.

    ``reason`` is the controller's answer as a value (``("not_started", dependency)``,
    ``("already_loaded", app, vsn)``, a start failure's reason, ...), for code that acts on
    it; the message says it in words.
    """

    def __init__(self, application: str, message: str, reason: object = None) -> None:
        self.application = application
        self.reason = reason
        super().__init__(f"application {application}: {message}")


class ReleaseError(ServerError):
    """Errors of release building and release handling."""


class NodeAlreadyRunning(ReleaseError):
    """Another node runs on this root (it holds ``<root>/run/node.lock``)."""

    def __init__(self, root: Path, pid: int | None) -> None:
        self.root = root
        self.pid = pid
        who = f" (pid {pid})" if pid is not None else ""
        super().__init__(
            f"a node already runs on {root}{who}; stop it first (server stop --root {root}) "
            "or use another --root"
        )


class BuildError(ReleaseError):
    """A release package or its relup cannot be built; nothing was written.

    ``problems`` lists what is wrong, one line each, each saying what to fix.
    """

    def __init__(self, what: str, problems: list[str]) -> None:
        self.what = what
        self.problems = problems
        shown = "\n  ".join(problems)
        super().__init__(f"cannot build {what}:\n  {shown}")


class InstallRefused(ReleaseError):
    """An install, check or other release operation was refused; nothing was changed."""


class StatusRefused(InstallRefused):
    """The action is not allowed for the release's status; nothing changed.

    ``status`` and ``action`` are the row of the status table that refused
    (``server.release.release_status``); ``why`` says what to do instead.
    """

    def __init__(self, vsn: str, status: str, action: str, why: str) -> None:
        self.vsn = vsn
        self.status = status
        self.action = action
        super().__init__(f"cannot {action.replace('_', ' ')} {vsn} ({status}): {why}")


class InstallFailed(ReleaseError):
    """An install failed after the point of no return.

    ``outcome`` says what the node did about it: ``"rolled_back"`` (every module, state and
    application back as it was, in place) or ``"restarting"`` (a step that cannot be undone
    had run: the node restarts into its permanent release). ``pid`` and ``module`` name the
    failing process and module when there is one; ``detail`` is its traceback or reason.
    """

    def __init__(
        self,
        vsn: str,
        step: str,
        outcome: str,
        detail: str,
        *,
        pid: str | None = None,
        module: str | None = None,
    ) -> None:
        self.vsn = vsn
        self.step = step
        self.outcome = outcome
        self.detail = detail
        self.pid = pid
        self.module = module
        where = f" in process {pid}" if pid else ""
        where += f" (module {module})" if module else ""
        then = (
            "nothing was changed: the node runs the previous release, every state untouched"
            if outcome == "rolled_back"
            else "the node restarts into its permanent release"
        )
        super().__init__(f"install of {vsn} failed at {step}{where}: {detail}; {then}")


class UnpackError(ReleaseError):
    """A release package was refused while unpacking; the node's releases and libs are as before.

    ``package`` is the package file, ``member`` the archive member at fault (None when the
    package as a whole is), ``reason`` what is wrong and what to do about it.
    """

    def __init__(self, package: str, reason: str, member: str | None = None) -> None:
        self.package = package
        self.member = member
        self.reason = reason
        where = package if member is None else f"{package}, member {member!r}"
        super().__init__(f"cannot unpack {where}: {reason}")


class SignatureRefused(UnpackError):
    """The node lists trusted keys and the package's signature does not prove its origin.

    Refused before the archive is read: nothing was written. ``signature`` is the signature
    file (``<package>.sig``).
    """

    def __init__(self, package: str, signature: str, reason: str) -> None:
        self.signature = signature
        super().__init__(package, reason)


class UnsignedPackage(SignatureRefused):
    """The package has no signature file beside it, and the node accepts only signed ones."""

    def __init__(self, package: str, signature: str) -> None:
        super().__init__(
            package,
            signature,
            f"it is not signed (no {signature}) and this node accepts only packages signed "
            "by a key in [node] trusted_keys; build it with `server build --sign KEY` and copy "
            "the .sig file beside it",
        )


class UntrustedSigner(SignatureRefused):
    """The package is signed, by a key that is not in the node's ``[node] trusted_keys``.

    ``key`` is the signer's public key as the signature file names it (base64).
    """

    def __init__(self, package: str, signature: str, key: str) -> None:
        self.key = key
        super().__init__(
            package,
            signature,
            f"it is signed by key {key}, which is not in this node's [node] trusted_keys; "
            "sign it with a trusted key, or add that public key to sys.config if you trust it",
        )


class BadSignature(SignatureRefused):
    """The signature file is malformed, or its signature does not match the package."""

    def __init__(self, package: str, signature: str, why: str) -> None:
        self.why = why
        super().__init__(
            package,
            signature,
            f"{why}: the package or its signature was altered or damaged; copy both again "
            "from where they were built and signed",
        )


class SigningKeyError(ReleaseError):
    """A signing key file cannot be read, is not an Ed25519 key, or cannot be written."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"signing key {path}: {why}")


class SpecError(ServerError):
    """A spec or configuration file is malformed; nothing was changed.

    ``problems`` lists ``(field, what was expected or wrong)`` pairs.
    """

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = "; ".join(f"{where}: {what}" if where else what for where, what in problems)
        super().__init__(f"{path}: {lines}")


class NetError(ServerError):
    """Errors of HTTP served from processes."""


class HttpProtocolError(NetError):
    """The bytes received are not an acceptable HTTP/1.1 request; answer ``status``.

    Attributes:
        status: the status code to answer with (the connection is closed after it).
        detail: what was wrong, for the log.
    """

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        super().__init__(f"{status} {phrase}: {detail}")


class ControlError(ServerError):
    """Errors of the control socket and the CLI talking to a node."""


class ControlSocketError(ControlError):
    """The control socket's path cannot be used; nothing was changed.

    ``why`` says what is wrong: too long for ``AF_UNIX``, its folder unsafe (writable by
    every user), not a socket, or no permission.
    """

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"control socket {path}: {why}")


class SocketInUse(ControlSocketError):
    """Another live node answers on the control socket; it was left alone."""

    def __init__(self, path: str) -> None:
        super().__init__(
            path,
            "another node is listening on it; stop that node or start this one on another root",
        )


class NodeNotRunning(ControlError):
    """No node listens on the control socket (no socket file, or a stale one)."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(
            f"no node is running at {path} ({why}); start one with `server run --root <root>`"
        )


class ControlTimeout(ControlError, TimeoutError):
    """The node did not answer in time; ``sent``: the request went out (it may have run)."""

    def __init__(self, path: str, command: str, timeout: float, *, sent: bool) -> None:
        self.path = path
        self.command = command
        self.timeout = timeout
        self.sent = sent
        if not sent:
            outcome = "nothing was sent, so it did not run"
        else:
            outcome = (
                "if the node reads it from now on it refuses it, but if it read it in time "
                "it may still be running or done: check with `server releases` (or the "
                "command's own listing) and the node's log"
            )
        super().__init__(
            f"the node at {path} did not answer {command!r} within {timeout:g} s; {outcome}"
        )


class ConnectionLost(ControlError):
    """The node closed the connection before its final reply; the outcome is unknown."""

    def __init__(self, path: str, command: str) -> None:
        self.path = path
        self.command = command
        super().__init__(
            f"the node at {path} closed the connection before answering {command!r}; "
            "it may have stopped, and the command may or may not have run"
        )


class ProtocolViolation(ControlError):
    """The node sent a line that is not a valid message (a client of another version?)."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(
            f"the node at {path} sent an unreadable message ({why}); "
            "check that the CLI and the node are the same version"
        )


class RemoteError(ControlError):
    """The node answered with an error.

    ``type`` is the error's class name in the node (``NotPurged``, ``InstallRefused``, ...)
    or a protocol error type (``unknown_command``, ``bad_request``, ``internal``, ...).
    """

    def __init__(self, type: str, message: str) -> None:  # noqa: A002 - the wire's name
        self.type = type
        self.message = message
        super().__init__(f"{type}: {message}")


class ProjectError(ServerError):
    """``server new`` cannot create the project (a bad name, a folder in use); nothing written."""


class HeartError(ServerError):
    """Errors of the heart, the watchdog behind ``server start``."""


class HeartAlreadyRunning(HeartError):
    """A heart (or the node of a heart that died) already holds this root."""

    def __init__(self, root: Path, heart_pid: int | None, node_pid: int | None) -> None:
        self.root = root
        self.heart_pid = heart_pid
        self.node_pid = node_pid
        if heart_pid is not None:
            what = f"a heart already runs on {root} (pid {heart_pid})"
            todo = f"stop it first (kill -TERM {heart_pid}) or use another --root"
        elif node_pid is not None:
            what = f"the node of a heart that is gone still runs on {root} (pid {node_pid})"
            todo = f"stop that node first (kill -TERM {node_pid})"
        else:
            what = f"a heart or its node holds {root / 'run' / 'heart.lock'}"
            todo = "stop it first or use another --root"
        super().__init__(f"{what}; {todo}")


class HeartStartFailed(HeartError):
    """A detached heart ended, or said nothing, before it started its node."""

    def __init__(self, root: Path, why: str) -> None:
        self.root = root
        super().__init__(f"the heart for {root} {why}; see {root / 'log' / 'node.log'}")


class LocalClusterError(HeartError):
    """``server start --nodes N`` or ``server stop`` on such a root: refused, or a node failed.

    ``why`` says what; when a node failed to start, the nodes started before it were stopped.
    """

    def __init__(self, root: Path, why: str) -> None:
        self.root = root
        self.why = why
        super().__init__(f"nodes of {root}: {why}")


class DistributionError(ServerError):
    """Errors of the Erlang distribution: node names, cookies, EPMD, the handshake."""


class TermDecodeError(DistributionError, ValueError):
    """Bytes received are not a valid external term (or exceed the decoder's limits).

    Nothing was decoded: the caller drops the input (and, for a connection, the peer).

    Attributes:
        reason: what is wrong with the input.
        offset: where in the input it was found (into the decompressed data for a
            compressed term, as ``reason`` says).
    """

    def __init__(self, reason: str, offset: int) -> None:
        self.reason = reason
        self.offset = offset
        super().__init__(f"invalid external term: {reason} at offset {offset}")


class NodeNameError(DistributionError, ValueError):
    """A node name is malformed, or a short name was given where a long one is needed."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(f"bad node name {name!r}: {why}")


class CookieError(DistributionError):
    """No usable cookie: the cookie file cannot be read or created, is unsafe, or is malformed.

    ``path`` is the cookie file (None for an explicit cookie).
    """

    def __init__(self, path: str | None, why: str) -> None:
        self.path = path
        self.why = why
        where = f"cookie file {path}" if path is not None else "the cookie"
        super().__init__(f"{where}: {why}")


class EpmdError(DistributionError):
    """EPMD did not answer, refused a request, or sent a malformed reply."""

    def __init__(self, host: str, port: int, why: str) -> None:
        self.host = host
        self.port = port
        self.why = why
        super().__init__(f"EPMD at {host}:{port}: {why}")


class NodeNameTaken(EpmdError):
    """Another node is registered under the name at this EPMD; nothing was registered."""

    def __init__(self, host: str, port: int, name: str) -> None:
        self.name = name
        super().__init__(
            host,
            port,
            f"the name {name!r} is already registered by another node; stop that node "
            "or choose another name",
        )


class HandshakeError(DistributionError):
    """The distribution handshake with ``peer`` failed midway; the connection is closed.

    ``peer`` is the peer's node name when known (else its address or ``"?"``).
    """

    def __init__(self, peer: str, why: str) -> None:
        self.peer = peer
        self.why = why
        super().__init__(f"handshake with {peer} failed: {why}")


class HandshakeTimeout(HandshakeError, TimeoutError):
    """The handshake did not finish within the setup time (Erlang's ``net_setuptime``)."""

    def __init__(self, peer: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(peer, f"not finished within {timeout:g} s; is the peer a node?")


class HandshakeRefused(HandshakeError):
    """One side refused the connection; ``reason`` says why (a status, ``"bad digest"``, ...)."""

    def __init__(self, peer: str, reason: str, why: str) -> None:
        self.reason = reason
        super().__init__(peer, why)


class SimultaneousConnect(HandshakeRefused):
    """``nok``: the two nodes dial each other at once and the other connection wins."""

    def __init__(self, peer: str) -> None:
        super().__init__(
            peer,
            "nok",
            "both nodes are connecting to each other at once and this connection loses to "
            "the other one (the greater node name's dial wins); use that connection",
        )


class RpcError(DistributionError):
    """An ``rpc.call`` was answered ``{badrpc, Reason}``: refused, undefined or crashed there.

    ``reason`` is the term the other node gave (``{not_allowed, {M, F, A}}`` when the
    function is not in that node's ``[node.dist] rpc_allow``).
    """

    def __init__(self, node: str, function: str, reason: object) -> None:
        self.node = node
        self.function = function
        self.reason = reason
        super().__init__(f"rpc {function} on {node} failed: {reason!r}")


class RolloutError(ServerError):
    """A cluster-wide rollout or reconcile refused to start: nothing was changed on any node."""


class HealthCheckFailed(RolloutError):
    """A node's health check did not pass after its install (the line says what was seen)."""
