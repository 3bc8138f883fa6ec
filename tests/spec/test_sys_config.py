"""sys.config: the [node] table and per-application env overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.errors import SpecError
from server.spec.sys_config import (
    NodeSettings,
    SysConfig,
    env_from_environ,
    merge_env,
    read_sys_config,
)

from ._support import assert_problem, write

if TYPE_CHECKING:
    from pathlib import Path

MISTAKES = [
    ("bad-log-level", '[node]\nlog_level = "LOUD"\n', "node.log_level", "'DEBUG'", "'CRITICAL'"),
    ("lowercase-log-level", '[node]\nlog_level = "info"\n', "node.log_level", "'INFO'"),
    (
        "negative-heart-restarts",
        "[node]\nheart_max_restarts = -1\n",
        "node.heart_max_restarts",
        "greater than or equal to 0",
    ),
    (
        "fractional-heart-restarts",
        "[node]\nheart_max_restarts = 1.5\n",
        "node.heart_max_restarts",
        "valid integer",
    ),
    ("zero-heart-period", "[node]\nheart_period = 0\n", "node.heart_period", "greater than 0"),
    (
        "negative-heart-period",
        "[node]\nheart_period = -2.5\n",
        "node.heart_period",
        "greater than 0",
    ),
    ("heart-period-string", '[node]\nheart_period = "60"\n', "node.heart_period", "valid number"),
    ("unknown-node-key", "[node]\ncolour = 1\n", "node.colour", "unknown key"),
    (
        "zero-http-cap",
        "[node.http]\nmax_connections = 0\n",
        "node.http.max_connections",
        "greater than or equal to 1",
    ),
    ("tiny-read-size", "[node.http]\nread_size = 10\n", "node.http.read_size", "512"),
    ("zero-send-timeout", "[node.http]\nsend_timeout = 0\n", "node.http.send_timeout", "0"),
    ("unknown-http-key", "[node.http]\nport = 1\n", "node.http.port", "unknown key"),
    (
        "connect-not-a-node-name",
        '[node.dist]\nname = "a"\nconnect = ["b"]\n',
        "node.dist",
        "'alive@host'",
    ),
    (
        "zero-connect-timeout",
        '[node.dist]\nname = "a"\nconnect_timeout = 0\n',
        "node.dist.connect_timeout",
        "greater than 0",
    ),
    ("reuse-port-string", '[node.http]\nreuse_port = "yes"\n', "node.http.reuse_port", "bool"),
    ("empty-node-name", '[node]\nname = ""\n', "node.name", "at least 1"),
    ("node-name-int", "[node]\nname = 1\n", "node.name", "valid string"),
    ("node-not-table", "node = 5\n", "node", "must be a table", "int"),
    ("app-override-not-table", 'counter = "fast"\n', "counter", "must be a table", "str"),
    ("app-override-list", "counter = [1]\n", "counter", "must be a table", "list"),
    ("app-table-name", "[Counter]\nport = 1\n", "Counter", "application name"),
    ("app-env-datetime", "[counter]\nwhen = 1979-05-27\n", "counter.when", "JSON value"),
    (
        "app-env-nested-datetime",
        "[counter]\nwhen = [[1979-05-27]]\n",
        "counter.when[0][0]",
        "JSON value",
    ),
]

GRID = [pytest.param(text, field, expected, id=name) for name, text, field, *expected in MISTAKES]


@pytest.mark.parametrize(("text", "field", "expected"), GRID)
def test_a_mistake_is_a_spec_error_naming_table_and_key(
    tmp_path: Path, text: str, field: str, expected: list[str]
) -> None:
    path = write(tmp_path, text, "sys.config")
    with pytest.raises(SpecError) as caught:
        read_sys_config(path)
    assert type(caught.value) is SpecError
    assert_problem(caught.value, path, field, *expected)


def test_every_table_is_checked_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '[node]\nlog_level = "x"\n[counter]\nwhen = 1979-05-27\n[B]\n')
    with pytest.raises(SpecError) as caught:
        read_sys_config(path)
    assert sorted(where for where, _ in caught.value.problems) == [
        "B",
        "counter.when",
        "node.log_level",
    ]


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    config = read_sys_config(tmp_path / "sys.config")
    assert config == SysConfig()
    assert config.node == NodeSettings()
    assert (config.node.name, config.node.log_level, config.node.release) == ("node", "INFO", None)
    assert (config.node.heart_max_restarts, config.node.heart_period) == (5, 60.0)
    assert config.env == {}


def test_a_good_file_gives_node_settings_and_env_overrides(tmp_path: Path) -> None:
    text = (
        '[node]\nname = "demo"\nrelease = "demo-1.0.0"\nlog_level = "DEBUG"\n'
        "heart_max_restarts = 0\nheart_period = 10\n"
        '[counter]\nport = 8080\nhosts = ["a"]\n[stats]\n'
    )
    config = read_sys_config(write(tmp_path, text, "sys.config"))
    assert config.node == NodeSettings(
        name="demo",
        release="demo-1.0.0",
        log_level="DEBUG",
        heart_max_restarts=0,
        heart_period=10.0,
    )
    assert config.env == {"counter": {"port": 8080, "hosts": ["a"]}, "stats": {}}


def test_an_env_table_may_hold_a_key_named_node_settings_use(tmp_path: Path) -> None:
    config = read_sys_config(write(tmp_path, '[counter]\nlog_level = "loud"\n', "sys.config"))
    assert config.env == {"counter": {"log_level": "loud"}}
    assert config.node == NodeSettings()


def test_environment_variables_name_an_app_a_key_and_a_toml_value() -> None:
    environ = {
        "SERVER_CONFIG__COUNTER__PORT": "8181",
        "SERVER_CONFIG__COUNTER__GREETING": '"hi"',
        "SERVER_CONFIG__STATS__TAGS": "[1, 2]",
        "SERVER_CONFIG__STATS__MODE": "fast",  # not TOML: the text as it is
        "PATH": "/bin",
    }
    assert env_from_environ(environ) == {
        "counter": {"port": 8181, "greeting": "hi"},
        "stats": {"tags": [1, 2], "mode": "fast"},
    }


@pytest.mark.parametrize("name", ["SERVER_CONFIG__COUNTER", "SERVER_CONFIG__9X__PORT"])
def test_an_environment_variable_naming_no_app_and_key_is_an_error(name: str) -> None:
    with pytest.raises(SpecError, match=name):
        env_from_environ({name: "1"})


def test_later_env_layers_win_key_by_key() -> None:
    spec: dict[str, dict[str, object]] = {"counter": {"port": 1, "max": 5}}
    root: dict[str, dict[str, object]] = {"counter": {"port": 2}, "stats": {"on": True}}
    environ: dict[str, dict[str, object]] = {"counter": {"port": 3}}
    assert merge_env(spec, root, environ) == {
        "counter": {"port": 3, "max": 5},
        "stats": {"on": True},
    }
    assert spec == {"counter": {"port": 1, "max": 5}}  # the layers are not changed
