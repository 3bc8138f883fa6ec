"""An application's Python requirements: read, met or not, changed between releases."""

from __future__ import annotations

import pytest

from server.spec.app_spec import AppSpec
from server.spec.requirements import requirements_change, unmet

VERSIONS = {"requests": "2.31.0", "attrs": "21.4.0"}


def test_a_requirement_is_checked_when_the_spec_is_read() -> None:
    spec = AppSpec.model_validate({"name": "shop", "vsn": "1", "requires": ["requests>=2.31"]})
    assert spec.requires == ["requests>=2.31"]
    with pytest.raises(ValueError, match=r"'requests >>= 2' is not a requirement"):
        AppSpec.model_validate({"name": "shop", "vsn": "1", "requires": ["requests >>= 2"]})


def test_what_the_environment_lacks_is_named_by_application_and_distribution() -> None:
    requires = [
        ("shop", "requests>=2.31"),
        ("shop", "attrs>=22"),
        ("stats", "numpy"),
        ("stats", "pywin32; sys_platform == 'win32'"),  # not for this platform: skipped
    ]
    assert unmet(requires, VERSIONS.get) == [
        "shop needs attrs>=22: attrs 21.4.0 is installed",
        "stats needs numpy: numpy is not installed",
    ]


def test_a_change_of_requirements_is_told_by_name_and_specifier() -> None:
    assert requirements_change(["Requests>=2.31", "attrs"], ["requests>=2.31", "attrs>=22"]) == (
        ["attrs>=22"],
        ["attrs"],
    )
    assert requirements_change(["a", "b"], ["b", "a"]) == ([], [])
