"""``sys.config``: node settings and per-application env overrides (TOML).

::

    [node]
    name = "demo"                     # the node's name
    release = "demo-1.0.0"            # release spec booted when the root has no RELEASES
    control_socket = "run/control.sock"   # relative to the root
    log_level = "INFO"                # unless --log-level is given
    log_format = "text"               # or "json", one object per line; unless --log-format
    apps_dir = "apps"                 # where the sources of the embedded release live
    heart_max_restarts = 5            # the heart gives up after this many restarts ...
    heart_period = 60.0               # ... within this many seconds
    trusted_keys = ["base64 ..."]     # Ed25519 public keys whose signed packages unpack
    unpack_timeout = 300.0            # an unpack still running after this is given up

    [node.http]                       # defaults for every HTTP listener of the node
    max_connections = 10000           # all listeners together; default: fd limit - 256
    read_size = 65536                 # the most one read of a connection takes (bytes)
    send_timeout = 30.0               # a client that takes no answer this long is cut off
    reuse_port = false                # SO_REUSEPORT: nodes of one machine share a port

    [node.observer]                   # present: serve the observer web view (off without it)
    port = 0                          # 0: any free port (the URL is logged at start)
    host = "127.0.0.1"                # loopback by default
    metrics_token = true              # /metrics asks for the token too (false: open)
    interval = 1.0                    # seconds between two pushes to an open page

    [counter]                         # every other table: env overrides for that app
    port = 8080

``trusted_keys`` holds public keys inline, each the one line of the ``.pub`` file that
``server keygen`` writes: the key's 32 raw bytes in standard base64 (44 characters). With
keys listed, the node unpacks only packages signed by one of them; with none (the default)
it unpacks any package and logs a warning at boot and at each unpack that packages are not
verified. The node reads them from its own ``sys.config`` only, never from the copy inside
a package: a package cannot name the key that lets the next one in.
"""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic

from server.errors import SpecError
from server.spec.files import SPEC_MODEL_CONFIG, AppName, load_toml, validation_problems

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "ENV_PREFIX",
    "DistSettings",
    "DistTlsSettings",
    "GcSettings",
    "HttpSettings",
    "NodeSettings",
    "ObserverSettings",
    "PublicKeyText",
    "SysConfig",
    "canonical_public_key",
    "env_from_environ",
    "merge_env",
    "read_sys_config",
]

_Text = Annotated[str, pydantic.StringConstraints(min_length=1)]
_PUBLIC_KEY_SIZE = 32


def canonical_public_key(text: str) -> str | None:
    """``text`` as standard padded base64 if it encodes 32 bytes (an Ed25519 key), else None."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw).decode("ascii") if len(raw) == _PUBLIC_KEY_SIZE else None


def _check_public_key(text: str) -> str:
    key = canonical_public_key(text)
    if key is None:
        raise ValueError(
            "expected an Ed25519 public key: its 32 bytes in base64 (44 characters), the "
            "line of the .pub file `server keygen` writes"
        )
    return key


#: An Ed25519 public key, its 32 raw bytes in standard base64 (normalised).
PublicKeyText = Annotated[str, pydantic.AfterValidator(_check_public_key)]


class HttpSettings(pydantic.BaseModel):
    """The ``[node.http]`` table: defaults for every HTTP listener of the node.

    ``max_connections`` counts the connections of all listeners together; left out, it is
    the soft descriptor limit less 256 (kept for the control socket and the node's files).
    ``reuse_port`` sets ``SO_REUSEPORT`` on every listening socket before it is bound, so
    several nodes of one machine listen on one port and the kernel spreads the connections
    among them (every socket on the port must set it: ``server start --nodes N`` does).
    """

    model_config = SPEC_MODEL_CONFIG

    max_connections: Annotated[int, pydantic.Field(ge=1)] | None = None
    read_size: Annotated[int, pydantic.Field(ge=512, le=16 * 1024 * 1024)] = 64 * 1024
    send_timeout: Annotated[float, pydantic.Field(gt=0)] = 30.0
    reuse_port: bool = False
    #: the HTTP/1.1 parser of ASGI connections; left out: httptools when installed, else h11
    parser: Literal["httptools", "h11"] | None = None


class DistTlsSettings(pydantic.BaseModel):
    """The ``[node.dist.tls]`` table: the distribution over TLS (Erlang's ``inet_tls``).

    Both sides present a certificate and check the other's against ``cafile`` (mutual
    TLS): the cookie's MD5 challenge then only names the cluster, TLS authenticates and
    encrypts. ``check_hostname`` also matches the peer's certificate against the host part
    of its node name. Paths are relative to the node's working directory.
    """

    model_config = SPEC_MODEL_CONFIG

    certfile: _Text
    keyfile: _Text
    cafile: _Text
    verify_peer: bool = True
    check_hostname: bool = False


class DistSettings(pydantic.BaseModel):
    """The ``[node.dist]`` table: this node in a cluster (Erlang's distribution).

    Present means distributed. ``name`` is ``alive@host`` or just ``alive`` (the host is
    then this machine's short name, or its full name with ``longnames``). ``cookie`` left
    out means ``~/.erlang.cookie``, as Erlang does. ``listen_host`` is where peers connect
    (loopback by default: give an address peers can reach, on a private network or with
    TLS). ``rpc_allow`` lists the ``module:function`` pairs that peers may call through
    ``rpc``/``erpc``; nothing else can be run from another node. ``connect`` names peers
    (``alive@host``) the node connects to at boot, retrying while they boot too, for at most
    ``connect_timeout`` seconds (OTP's ``sync_nodes_optional`` and ``sync_nodes_timeout``;
    the boot does not wait for it), so a node restarted by its heart rejoins by itself.
    """

    model_config = SPEC_MODEL_CONFIG

    name: _Text
    longnames: bool = False
    cookie: _Text | None = None
    hidden: bool = True
    net_ticktime: Annotated[float, pydantic.Field(gt=0)] = 60.0
    setup_timeout: Annotated[float, pydantic.Field(gt=0)] = 7.0
    listen_host: _Text = "127.0.0.1"
    listen_port_min: Annotated[int, pydantic.Field(ge=0, le=65535)] = 0
    listen_port_max: Annotated[int, pydantic.Field(ge=0, le=65535)] = 0
    epmd_host: _Text = "127.0.0.1"
    epmd_port: Annotated[int, pydantic.Field(ge=1, le=65535)] | None = None
    start_epmd: bool = True
    rpc_allow: list[_Text] = []
    busy_limit: Annotated[int, pydantic.Field(ge=1024)] = 1024 * 1024
    max_message: Annotated[int, pydantic.Field(ge=1024)] = 256 * 1024 * 1024
    tls: DistTlsSettings | None = None
    connect: list[_Text] = []
    connect_timeout: Annotated[float, pydantic.Field(gt=0)] = 30.0

    @pydantic.model_validator(mode="after")
    def _ports(self) -> DistSettings:
        if self.listen_port_max and self.listen_port_max < self.listen_port_min:
            raise ValueError("listen_port_max is below listen_port_min")
        for entry in self.rpc_allow:
            module, _, function = entry.partition(":")
            if not module or not function:
                raise ValueError(f"rpc_allow entry {entry!r} is not 'module:function'")
        for peer in self.connect:
            alive, _, host = peer.partition("@")
            if not alive or not host:
                raise ValueError(f"connect entry {peer!r} is not a node name 'alive@host'")
        return self


class ObserverSettings(pydantic.BaseModel):
    """The ``[node.observer]`` table: the observer web view, served when present.

    It listens on ``host:port`` (loopback by default; ``port = 0`` picks a free port) and
    answers only requests that carry the token it makes at start (logged, and printed by
    ``server observer``); an open page gets a new view every ``interval`` seconds, and an
    install's steps as they happen. ``metrics_token = false`` leaves ``/metrics`` open to a
    scraper that cannot send the token; every other page still asks for it.
    """

    model_config = SPEC_MODEL_CONFIG

    port: Annotated[int, pydantic.Field(ge=0, le=65535)] = 0
    host: _Text = "127.0.0.1"
    metrics_token: bool = True
    interval: Annotated[float, pydantic.Field(gt=0)] = 1.0


class GcSettings(pydantic.BaseModel):
    """The ``[node.gc]`` table: the cyclic garbage collector's policy.

    ``freeze`` collects and then freezes what survives (``gc.freeze``) after the boot and
    after each install, so full collections no longer look at what lives as long as the
    node; ``refreeze`` (0: never) unfreezes first every that many installs, so frozen
    cycles that became garbage are freed; ``defer_full`` holds automatic full collections
    back while an install runs; ``thresholds`` are ``gc.set_threshold``'s (none: Python's
    own); ``pace`` is the seconds between the node's own young collections (0: none). See
    ``server.release.gc_policy``.
    """

    model_config = SPEC_MODEL_CONFIG

    freeze: bool = True
    refreeze: Annotated[int, pydantic.Field(ge=0)] = 16
    defer_full: bool = True
    thresholds: (
        Annotated[
            list[Annotated[int, pydantic.Field(ge=0)]],
            pydantic.Field(min_length=3, max_length=3),
        ]
        | None
    ) = None
    pace: Annotated[float, pydantic.Field(ge=0)] = 0.05


class NodeSettings(pydantic.BaseModel):
    """The ``[node]`` table."""

    model_config = SPEC_MODEL_CONFIG

    name: _Text = "node"
    release: _Text | None = None
    control_socket: _Text = "run/control.sock"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    apps_dir: _Text = "apps"
    heart_max_restarts: Annotated[int, pydantic.Field(ge=0)] = 5
    heart_period: Annotated[float, pydantic.Field(gt=0)] = 60.0
    trusted_keys: list[PublicKeyText] = []
    unpack_timeout: Annotated[float, pydantic.Field(gt=0)] = 300.0
    http: HttpSettings = HttpSettings()
    dist: DistSettings | None = None
    observer: ObserverSettings | None = None
    gc: GcSettings = GcSettings()


class SysConfig(pydantic.BaseModel):
    """The whole file: node settings plus env overrides per application."""

    model_config = SPEC_MODEL_CONFIG

    node: NodeSettings = NodeSettings()
    env: dict[AppName, dict[str, pydantic.JsonValue]] = {}


_ENV_TABLE: pydantic.TypeAdapter[dict[str, pydantic.JsonValue]] = pydantic.TypeAdapter(
    dict[str, pydantic.JsonValue], config=pydantic.ConfigDict(strict=True)
)
_APP_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def read_sys_config(path: Path) -> SysConfig:
    """Read ``sys.config``; a missing file gives the defaults.

    Raises:
        SpecError: the file is unreadable or malformed (each problem named by its table and
            key: ``node.log_level``, ``counter.port``).
    """
    if not path.exists():
        return SysConfig()
    data = load_toml(path)
    problems: list[tuple[str, str]] = []
    node = NodeSettings()
    env: dict[str, dict[str, Any]] = {}
    for table, value in data.items():
        if not isinstance(value, dict):
            what = "the node settings" if table == "node" else "an application's env overrides"
            problems.append((table, f"{what} must be a table, got {type(value).__name__}"))
        elif table == "node":
            try:
                node = NodeSettings.model_validate(value)
            except pydantic.ValidationError as exc:
                problems += validation_problems(exc, value, "node")
        elif not _APP_NAME.fullmatch(table):
            problems.append((table, "expected [node] or an application name as table name"))
        else:
            try:
                env[table] = _ENV_TABLE.validate_python(value)
            except pydantic.ValidationError as exc:
                problems += validation_problems(exc, value, table)
    if problems:
        raise SpecError(str(path), problems)
    return SysConfig(node=node, env=env)


#: ``SERVER_CONFIG__<APP>__<KEY>=<TOML value>`` overrides one env key of one application.
ENV_PREFIX = "SERVER_CONFIG__"


def env_from_environ(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The env overrides named by environment variables (``SERVER_CONFIG__COUNTER__PORT``).

    The value is read as a TOML value (``8181``, ``"text"``, ``[1, 2]``, ``true``); one that
    is not TOML is taken as a string. Application and key are lower-cased.

    Raises:
        SpecError: a variable does not name an application and a key.
    """
    found: dict[str, dict[str, Any]] = {}
    problems: list[tuple[str, str]] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        app, sep, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
        if not sep or not _APP_NAME.fullmatch(app) or not key:
            problems.append((name, f"expected {ENV_PREFIX}<APP>__<KEY>"))
            continue
        try:
            value: Any = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw
        found.setdefault(app, {})[key] = value
    if problems:
        raise SpecError("the environment", problems)
    return found


def merge_env(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Env overrides per application, each layer's keys over the earlier ones'."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for app, values in layer.items():
            merged.setdefault(app, {}).update(values)
    return merged
