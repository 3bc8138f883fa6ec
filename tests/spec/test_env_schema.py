"""An application's env schema: declared as data, checked at spec, build and boot."""

from __future__ import annotations

import pytest

from server.errors import SpecError
from server.spec.app_spec import AppSpec
from server.spec.env_schema import (
    EnvField,
    EnvType,
    check_env,
    check_env_layers,
    check_release_env,
)

SCHEMA = {
    "port": {"type": "int", "ge": 0, "le": 65535, "required": True},
    "host": "str",
    "mode": {"type": "str", "choices": ["fast", "safe"]},
    "ratio": "float",
}


def schema() -> dict[str, EnvField | EnvType]:
    spec = AppSpec.model_validate({"name": "shop", "vsn": "1.0.0", "env_schema": SCHEMA})
    return spec.env_schema


@pytest.mark.parametrize(
    ("env", "key", "message"),
    [
        ({"port": "18090x"}, "port", "valid integer"),
        ({"port": 70000}, "port", "less than or equal to 65535"),
        ({"port": 80, "host": 1}, "host", "valid string"),
        ({"port": 80, "mode": "slow"}, "mode", "'fast' or 'safe'"),
        ({"port": 80, "colour": "red"}, "colour", "unknown key"),
        ({}, "port", "Field required"),
        ({"port": True}, "port", "valid integer"),
    ],
)
def test_a_value_that_does_not_fit_is_named_with_its_key(
    env: dict[str, object], key: str, message: str
) -> None:
    problems = check_env("shop", schema(), env, complete=True)
    assert [k for k, _ in problems] == [key]
    assert message in problems[0][1]


def test_what_fits_passes_and_an_int_is_a_float() -> None:
    assert (
        check_env("shop", schema(), {"port": 80, "ratio": 2, "mode": "safe"}, complete=True) == []
    )
    assert check_env("shop", {}, {"anything": object()}, complete=True) == []  # no schema


def test_a_spec_whose_own_env_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"env\.port"):
        AppSpec.model_validate(
            {"name": "shop", "vsn": "1.0.0", "env": {"port": "x"}, "env_schema": SCHEMA}
        )


def test_the_layer_a_bad_value_came_from_is_named() -> None:
    with pytest.raises(SpecError, match=r"shop\.port \(from /srv/sys\.config\)") as caught:
        check_env_layers(
            "shop",
            schema(),
            [("the spec", {"port": 80}), ("/srv/sys.config", {"port": "18090x"})],
        )
    assert "valid integer" in str(caught.value)


def test_a_table_for_an_application_the_release_lacks() -> None:
    apps = {"shop": (schema(), {"port": 80})}
    with pytest.raises(SpecError, match=r"no application ghost in release r 1") as caught:
        check_release_env(apps, [("releases/1/sys.config", {"ghost": {}})], "release r 1")
    assert "its applications: shop" in str(caught.value)
    warnings = check_release_env(
        apps, [("releases/1/sys.config", {}), ("the node's sys.config", {"ghost": {}})], "r 1"
    )
    assert warnings == [
        "the node's sys.config: [ghost] names no application of r 1; ignored until a release has it"
    ]
