"""The public surface of ``server.dist`` (names, cookie, flags, EPMD, handshake) and its errors."""

from __future__ import annotations

import importlib
import inspect

import pytest

import server.dist
import server.errors
from server.errors import DistributionError

PUBLIC_MODULES = [
    "server.dist.cookie",
    "server.dist.epmd",
    "server.dist.flags",
    "server.dist.handshake",
    "server.dist.names",
]
DIST_ERRORS = [
    "CookieError",
    "EpmdError",
    "HandshakeError",
    "HandshakeRefused",
    "HandshakeTimeout",
    "NodeNameError",
    "NodeNameTaken",
    "SimultaneousConnect",
]


@pytest.mark.parametrize("module_name", ["server.dist", *PUBLIC_MODULES])
def test_all_names_exist_and_are_unique(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert len(set(module.__all__)) == len(module.__all__)  # ruff (RUF022) keeps the order
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_definition_is_in_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
    }
    assert defined <= set(module.__all__)


def test_the_package_re_exports_public_names_only() -> None:
    for name in server.dist.__all__:
        value = getattr(server.dist, name)
        module = getattr(value, "__module__", None)
        if module is not None and module.startswith("server.dist."):
            assert not module.split(".")[2].startswith("_"), name


@pytest.mark.parametrize("name", DIST_ERRORS)
def test_distribution_errors_are_in_the_tree(name: str) -> None:
    error = getattr(server.errors, name)
    assert issubclass(error, DistributionError)
    assert name in server.errors.__all__
    assert f"── {name} " in (server.errors.__doc__ or "")


def test_the_distribution_branch_hangs_from_the_root() -> None:
    assert DistributionError.__bases__ == (server.errors.ServerError,)
    assert "── DistributionError " in (server.errors.__doc__ or "")
