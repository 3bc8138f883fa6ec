"""The public surface of ``server.observer``: every name listed exists, nothing is missed."""

from __future__ import annotations

import importlib
import inspect

import pytest

import server.observer

IMPLEMENTATION = ["server.observer._service", "server.observer._snapshot", "server.observer._web"]


def test_every_listed_name_exists() -> None:
    for name in server.observer.__all__:
        assert hasattr(server.observer, name), name


@pytest.mark.parametrize("module_name", [*IMPLEMENTATION, "server.release.install_feed"])
def test_each_module_lists_what_it_defines(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
        and name not in ("init", "handle_call", "handle_info", "app")  # callbacks, the ASGI app
    }
    assert defined <= set(module.__all__), module_name


def test_the_package_re_exports_the_snapshot_and_the_service() -> None:
    for module_name in IMPLEMENTATION:
        module = importlib.import_module(module_name)
        public = {name for name in module.__all__ if inspect.isfunction(getattr(module, name))} - {
            "app"
        }
        assert public <= set(server.observer.__all__), module_name
