"""The release spec: its mistakes, and a good file with OTP's default start type."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.spec.files import read_model
from server.spec.release_spec import ReleaseApp, ReleaseSpec

from ._support import assert_problem, spec_error, write

if TYPE_CHECKING:
    from pathlib import Path

HEAD = 'name = "demo"\nvsn = "2.0.0"\n'
COUNTER = '\n[[applications]]\nname = "counter"\nvsn = "2.0.0"\n'
STATS = '\n[[applications]]\nname = "stats"\nvsn = "1.0.0"\n'

MISTAKES = [
    ("unknown-top-key", HEAD + 'owner = "me"\n' + COUNTER, "owner", "unknown key"),
    ("unknown-app-key", HEAD + COUNTER + 'start = "now"\n', "applications[0].start", "unknown key"),
    ("missing-name", 'vsn = "1"\n' + COUNTER, "name", "required, missing"),
    ("missing-vsn", 'name = "demo"\n' + COUNTER, "vsn", "required, missing"),
    ("missing-applications", HEAD, "applications", "required, missing"),
    (
        "missing-app-vsn",
        HEAD + COUNTER + STATS.replace('vsn = "1.0.0"\n', ""),
        "applications[1].vsn",
        "required, missing",
    ),
    ("no-applications", HEAD + "applications = []\n", "applications", "at least one"),
    (
        "duplicate-application",
        HEAD + COUNTER + STATS + COUNTER.replace("2.0.0", "2.1"),
        "applications",
        "listed twice: counter",
    ),
    (
        "applications-table",
        HEAD + '[applications]\nname = "counter"\n',
        "applications",
        "valid list",
    ),
    (
        "application-string",
        HEAD + 'applications = ["counter"]\n',
        "applications[0]",
        "valid dictionary",
    ),
    ("vsn-int", 'name = "demo"\nvsn = 2\n' + COUNTER, "vsn", "valid string"),
    (
        "app-vsn-float",
        HEAD + '[[applications]]\nname = "counter"\nvsn = 2.0\n',
        "applications[0].vsn",
        "valid string",
    ),
    ("runtime-int", HEAD + "runtime = 3\n" + COUNTER, "runtime", "valid string"),
    (
        "release-name",
        HEAD.replace('"demo"', '"Demo Release"') + COUNTER,
        "name",
        "application name",
    ),
    (
        "app-name",
        HEAD + COUNTER.replace('"counter"', '"Counter"'),
        "applications[0].name",
        "application name",
    ),
    ("vsn-pattern", HEAD.replace('"2.0.0"', '"v 2"') + COUNTER, "vsn", "a version"),
    (
        "bad-start-type",
        HEAD + COUNTER + STATS + 'type = "forever"\n',
        "applications[1].type",
        "'permanent'",
        "'transient'",
        "'temporary'",
        "'load'",
        "'none'",
    ),
    ("start-type-int", HEAD + COUNTER + "type = 1\n", "applications[0].type", "'permanent'"),
]

GRID = [pytest.param(text, field, expected, id=name) for name, text, field, *expected in MISTAKES]


@pytest.mark.parametrize(("text", "field", "expected"), GRID)
def test_a_mistake_is_a_spec_error_naming_file_and_field(
    tmp_path: Path, text: str, field: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    assert_problem(spec_error(ReleaseSpec, path), path, field, *expected)


def test_a_good_release_parses_in_boot_order_with_permanent_by_default(tmp_path: Path) -> None:
    text = HEAD + 'runtime = "3.11"\n' + COUNTER + STATS + 'type = "temporary"\n'
    spec = read_model(ReleaseSpec, write(tmp_path, text))
    assert spec == ReleaseSpec(
        name="demo",
        vsn="2.0.0",
        runtime="3.11",
        applications=[
            ReleaseApp(name="counter", vsn="2.0.0", type="permanent"),
            ReleaseApp(name="stats", vsn="1.0.0", type="temporary"),
        ],
    )
    assert spec.app("stats") is spec.applications[1]
    assert spec.app("web") is None
