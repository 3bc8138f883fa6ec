"""The sys.config layer of each node of ``server start --nodes N`` (a pure core)."""

from __future__ import annotations

import math
import tomllib
from typing import Any

import pytest

from server.heart._layer import node_layer, node_names, stem_of, to_toml

USER: dict[str, Any] = {
    "node": {
        "name": "demo",
        "control_socket": "/elsewhere/control.sock",
        "heart_max_restarts": 3,
        "http": {"max_connections": 500},
        "dist": {"name": "shop@localhost", "epmd_port": 4400, "rpc_allow": ["m:f"]},
    },
    "counter": {"port": 8080},
}


@pytest.mark.parametrize(
    ("tables", "stem"),
    [
        (USER, "shop"),
        ({"node": {"name": "demo"}}, "demo"),
        ({"node": {"name": "demo", "dist": {"name": "solo"}}}, "solo"),
        ({}, "node"),
    ],
    ids=["dist-name", "node-name", "dist-name-without-host", "nothing"],
)
def test_the_stem_is_the_dist_alive_part_else_the_node_name(
    tables: dict[str, Any], stem: str
) -> None:
    assert stem_of(tables) == stem


def test_each_node_gets_its_name_socket_reuse_port_and_the_others_to_connect() -> None:
    names = node_names("shop", 3)
    assert names == ["shop-1@localhost", "shop-2@localhost", "shop-3@localhost"]
    layer = node_layer(USER, 2, names, "secret")
    node = layer["node"]
    assert (node["name"], node["control_socket"]) == ("shop-2", "run/control.sock")
    assert node["http"] == {"max_connections": 500, "reuse_port": True}
    assert node["dist"] == {
        "name": "shop-2@localhost",
        "epmd_port": 4400,
        "rpc_allow": ["m:f"],
        "cookie": "secret",
        "connect": ["shop-1@localhost", "shop-3@localhost"],
    }
    assert node["heart_max_restarts"] == 3
    assert layer["counter"] == {"port": 8080}
    assert USER["node"]["name"] == "demo"  # the user's tables are left as they were
    assert "cookie" not in USER["node"]["dist"]


def test_a_file_without_node_tables_gets_them() -> None:
    layer = node_layer({}, 1, node_names("node", 1), "c")
    assert layer["node"]["dist"]["connect"] == []
    assert layer["node"]["http"] == {"reuse_port": True}


def test_toml_reads_back_equal() -> None:
    tables: dict[str, Any] = {
        **node_layer(USER, 1, node_names("shop", 2), 'a "quoted"\\ cookie\x7f'),
        "app": {
            "odd key": "é\n\t",
            "nested": [{"a": 1, "b": [True, False]}, {}],
            "inner": {"x": 1.5, "y": -0.0},
            "big": 2**40,
            "far": math.inf,
            "empty": {},
        },
    }
    assert tomllib.loads(to_toml(tables)) == tables


def test_a_value_toml_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no TOML value for NoneType"):
        to_toml({"app": {"k": None}})
