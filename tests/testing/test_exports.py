"""The public surface of ``server.testing``: ``__all__`` lists exactly what it exports."""

from __future__ import annotations

import inspect

import server.testing
from server.testing import upgrades


def test_all_names_exist_and_are_sorted() -> None:
    assert upgrades.__all__ == sorted(upgrades.__all__)
    for name in upgrades.__all__:
        assert hasattr(upgrades, name), name


def test_every_public_definition_is_in_all_and_says_where_it_lives() -> None:
    # the records re-exported from the private module name the public one as their home
    public = {
        name
        for name, value in vars(upgrades).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == "server.testing.upgrades"
    }
    assert public == set(upgrades.__all__) - {"Check"}  # Check is a type alias


def test_the_package_imports_nothing_at_start_up() -> None:
    assert server.testing.__all__ == []
