"""The public surface of gen_event: ``__all__`` lists exactly what each module exports."""

from __future__ import annotations

import importlib
import inspect

import pytest

import server.behaviours
import server.errors
from server.behaviours import gen_event

MODULES = ["server.behaviours.gen_event", "server.behaviours.gen_event_callbacks"]


@pytest.mark.parametrize("module_name", MODULES)
def test_all_names_exist_and_are_sorted(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


@pytest.mark.parametrize("module_name", MODULES)
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


def test_the_event_message_names_its_public_module_and_the_package_exports_both() -> None:
    assert gen_event.EventMessage.__module__ == "server.behaviours.gen_event"
    assert {"gen_event", "gen_event_callbacks"} <= set(server.behaviours.__all__)
    for name in ("HandlerError", "HandlerNotInstalled", "HandlerAlreadyInstalled", "HandlerFailed"):
        assert name in server.errors.__all__
        assert name in (server.errors.__doc__ or "")
