"""The application spec: every kind of mistake names its field; good files give the model."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest

from server.spec.app_spec import AppSpec, StartCallback
from server.spec.appup import (
    AddApplication,
    AddModule,
    Apply,
    AppUp,
    AppUpEntry,
    DeleteModule,
    LoadModule,
    RemoveApplication,
    RestartApplication,
    Update,
)
from server.spec.files import read_model

from ._support import assert_problem, spec_error, write

if TYPE_CHECKING:
    from pathlib import Path

HEAD = """\
name = "counter"
vsn = "1.1.0"
modules = ["counter.app", "counter.server"]
"""
MOD = """
[mod]
module = "counter.app"
"""


def entry(instructions: str, key: str = 'vsn = "1.0.0"', side: str = "up") -> str:
    return f"\n[[appup.{side}]]\n{key}\ninstructions = [\n{instructions}\n]\n"


UPDATE = '{op = "update", module = "counter.server"}'

# (id, the file's text, the field named, words of what was expected)
MISTAKES = [
    # unknown keys, at every level
    ("unknown-top-key", HEAD + 'colour = "red"\n', "colour", "unknown key"),
    ("unknown-in-mod", HEAD + MOD + "argz = 1\n", "mod.argz", "unknown key"),
    ("unknown-in-appup", HEAD + "[appup]\nsideways = []\n", "appup.sideways", "unknown key"),
    (
        "unknown-in-entry",
        HEAD + '[[appup.up]]\nvsn = "1.0.0"\nnote = "x"\n',
        "appup.up[0].note",
        "unknown key",
    ),
    (
        "unknown-in-instruction",
        HEAD + entry(UPDATE + ',\n{op = "update", module = "counter.app", frob = 1}'),
        "appup.up[0].instructions[1].frob",
        "unknown key",
    ),
    # missing required fields
    ("missing-name", 'vsn = "1.0"\n', "name", "required, missing"),
    ("missing-vsn", 'name = "counter"\n', "vsn", "required, missing"),
    ("missing-mod-module", HEAD + "[mod]\nargs = 1\n", "mod.module", "required, missing"),
    (
        "instruction-without-module",
        HEAD + entry(UPDATE + ',\n{op = "load_module"}', side="down"),
        "appup.down[0].instructions[1].module",
        "required, missing",
    ),
    (
        "apply-without-function",
        HEAD + entry('{op = "apply", module = "counter.app"}'),
        "appup.up[0].instructions[0].function",
        "required, missing",
    ),
    (
        "add-application-without-application",
        HEAD + entry('{op = "add_application"}'),
        "appup.up[0].instructions[0].application",
        "required, missing",
    ),
    (
        "instruction-without-op",
        HEAD + entry('{module = "counter.server"}'),
        "appup.up[0].instructions[0].op",
        "required, missing",
    ),
    # wrong types (the models are strict: nothing is coerced)
    ("vsn-int", 'name = "counter"\nvsn = 1\n', "vsn", "valid string", "got 1"),
    ("vsn-float", 'name = "counter"\nvsn = 1.0\n', "vsn", "valid string"),
    (
        "modules-string",
        HEAD.replace('["counter.app", "counter.server"]', '"a.b"'),
        "modules",
        "valid list",
        "got 'a.b'",
    ),
    ("module-int", HEAD.replace('"counter.server"', "7"), "modules[1]", "valid string"),
    ("description-list", HEAD + 'description = ["x"]\n', "description", "valid string"),
    ("applications-string", HEAD + 'applications = "kernel"\n', "applications", "valid list"),
    ("registered-int", HEAD + "registered = [1]\n", "registered[0]", "valid string"),
    ("mod-string", HEAD + 'mod = "counter.app"\n', "mod", "valid dictionary"),
    ("env-not-table", HEAD + "env = 5\n", "env", "valid dictionary"),
    ("env-datetime", HEAD + "[env]\nwhen = 1979-05-27T07:32:00\n", "env.when", "JSON value"),
    ("appup-not-table", HEAD + 'appup = "none"\n', "appup", "valid dictionary"),
    ("appup-up-not-list", HEAD + "[appup]\nup = 5\n", "appup.up", "valid list"),
    (
        "instructions-not-list",
        HEAD + '[[appup.up]]\nvsn = "1.0.0"\ninstructions = "update"\n',
        "appup.up[0].instructions",
        "valid list",
    ),
    (
        "instruction-string",
        HEAD + entry('"load_module"'),
        "appup.up[0].instructions[0]",
        "valid dictionary",
    ),
    (
        "timeout-string",
        HEAD + entry('{op = "update", module = "m", timeout = "5"}'),
        "appup.up[0].instructions[0].timeout",
        "valid number",
    ),
    (
        "timeout-bool",
        HEAD + entry('{op = "update", module = "m", timeout = true}'),
        "appup.up[0].instructions[0].timeout",
        "valid number",
    ),
    (
        "supervisor-string",
        HEAD + entry('{op = "update", module = "m", supervisor = "yes"}'),
        "appup.up[0].instructions[0].supervisor",
        "valid boolean",
    ),
    (
        "dep-mods-string",
        HEAD + entry('{op = "load_module", module = "m", dep_mods = "n"}'),
        "appup.up[0].instructions[0].dep_mods",
        "valid list",
    ),
    (
        "apply-args-table",
        HEAD + entry('{op = "apply", module = "m", function = "f", args = {a = 1}}'),
        "appup.up[0].instructions[0].args",
        "valid list",
    ),
    # bad names and values
    (
        "app-name-capital",
        HEAD.replace('"counter"', '"Counter"'),
        "name",
        "application name",
        "got 'Counter'",
    ),
    ("app-name-dash", HEAD.replace('"counter"', '"my-app"'), "name", "application name"),
    ("vsn-space", HEAD.replace('"1.1.0"', '"1 1"'), "vsn", "a version"),
    ("vsn-empty", HEAD.replace('"1.1.0"', '""'), "vsn", "a version"),
    ("vsn-leading-dot", HEAD.replace('"1.1.0"', '".1"'), "vsn", "a version"),
    (
        "module-dash",
        HEAD.replace('"counter.server"', '"counter-server"'),
        "modules[1]",
        "module name",
    ),
    (
        "module-trailing-dot",
        HEAD.replace('"counter.server"', '"counter."'),
        "modules[1]",
        "module name",
    ),
    (
        "module-digit-start",
        HEAD.replace('"counter.server"', '"counter.2x"'),
        "modules[1]",
        "module name",
    ),
    (
        "dependency-name",
        HEAD + 'applications = ["Kernel"]\n',
        "applications[0]",
        "application name",
    ),
    (
        "instruction-module-name",
        HEAD + entry(UPDATE + ',\n{op = "update", module = "a b"}'),
        "appup.up[0].instructions[1].module",
        "module name",
    ),
    (
        "dep-mod-name",
        HEAD + entry('{op = "load_module", module = "m", dep_mods = ["n", "-"]}'),
        "appup.up[0].instructions[0].dep_mods[1]",
        "module name",
    ),
    (
        "apply-function-name",
        HEAD + entry('{op = "apply", module = "m", function = "f()"}'),
        "appup.up[0].instructions[0].function",
        "should match pattern",
    ),
    (
        "entry-vsn",
        HEAD + entry("", key='vsn = "1.0 beta"'),
        "appup.up[0].vsn",
        "a version",
    ),
    (
        "unknown-op",
        HEAD + entry('{op = "frob", module = "m"}'),
        "appup.up[0].instructions[0].op",
        "unknown op 'frob'",
        "'update'",
        "'load_module'",
    ),
    (
        "op-int",
        HEAD + entry("{op = 3}"),
        "appup.up[0].instructions[0].op",
        "unknown op",
    ),
    (
        "change-unknown",
        HEAD + entry('{op = "update", module = "m", change = "hard"}'),
        "appup.up[0].instructions[0].change",
        "'soft' or 'advanced'",
    ),
    (
        "timeout-zero",
        HEAD + entry('{op = "update", module = "m", timeout = 0}'),
        "appup.up[0].instructions[0].timeout",
        "greater than 0",
    ),
    (
        "timeout-nan",
        HEAD + entry('{op = "update", module = "m", timeout = nan}'),
        "appup.up[0].instructions[0].timeout",
        "greater than 0",
    ),
    (
        "pre-purge",
        HEAD + entry('{op = "update", module = "m", pre_purge = "gentle"}'),
        "appup.up[0].instructions[0].pre_purge",
        "'soft_purge' or 'brutal_purge'",
    ),
    (
        "post-purge",
        HEAD + entry('{op = "load_module", module = "m", post_purge = "soft"}'),
        "appup.up[0].instructions[0].post_purge",
        "'soft_purge' or 'brutal_purge'",
    ),
    (
        "mod-type",
        HEAD + entry('{op = "update", module = "m", mod_type = "frozen"}'),
        "appup.up[0].instructions[0].mod_type",
        "'static' or 'dynamic'",
    ),
    (
        "add-application-type",
        HEAD + entry('{op = "add_application", application = "stats", type = "forever"}'),
        "appup.up[0].instructions[0].type",
        "'permanent'",
        "'temporary'",
    ),
    (
        "extra-without-advanced",
        HEAD + entry('{op = "update", module = "m", extra = "v1"}'),
        "appup.up[0].instructions[0]",
        "only with change = 'advanced'",
    ),
    (
        "soft-supervisor",
        HEAD + entry('{op = "update", module = "m", supervisor = true, change = "soft"}'),
        "appup.up[0].instructions[0]",
        "always advanced",
    ),
    # one version key, a valid pattern
    (
        "vsn-and-vsn-regex",
        HEAD + entry("", key='vsn = "1.0.0"\nvsn_regex = "1\\\\..*"'),
        "appup.up[0]",
        "exactly one of vsn",
    ),
    ("neither-vsn-nor-regex", HEAD + entry(UPDATE, key=""), "appup.up[0]", "exactly one of vsn"),
    (
        "invalid-regex",
        HEAD + entry("", key='vsn_regex = "1.(0"', side="down"),
        "appup.down[0].vsn_regex",
        "valid regular expression",
        "got '1.(0'",
    ),
    # consistency
    (
        "depends-on-itself",
        HEAD + 'applications = ["kernel", "counter"]\n',
        "applications",
        "cannot depend on itself",
    ),
    (
        "dependency-twice",
        HEAD + 'applications = ["kernel", "kernel"]\n',
        "applications",
        "listed twice: kernel",
    ),
    (
        "duplicate-modules",
        HEAD.replace('"counter.server"]', '"counter.server", "counter.app"]'),
        "modules",
        "listed twice: counter.app",
    ),
    (
        "mod-not-in-modules",
        HEAD + '[mod]\nmodule = "counter.main"\n',
        "mod",
        "counter.main must be listed in modules",
    ),
]

GRID = [pytest.param(text, field, expected, id=name) for name, text, field, *expected in MISTAKES]


@pytest.mark.parametrize(("text", "field", "expected"), GRID)
def test_a_mistake_is_a_spec_error_naming_file_and_field(
    tmp_path: Path, text: str, field: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    error = spec_error(AppSpec, path)
    assert_problem(error, path, field, *expected)


def test_every_mistake_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "Bad"\nvsn = 2\nmodules = ["x-y"]\nextra = 1\n')
    error = spec_error(AppSpec, path)
    assert sorted(where for where, _ in error.problems) == ["extra", "modules[0]", "name", "vsn"]


FULL = textwrap.dedent(
    """\
    name = "counter"
    vsn = "1.1.0"
    description = "HTTP counters"
    modules = ["counter.app", "counter.server", "counter.sup"]
    registered = ["counter_server"]
    applications = ["kernel"]

    [mod]
    module = "counter.app"
    args = {port = 8080, hosts = ["a", "b"]}

    [env]
    port = 8080
    ratio = 0.5
    tags = ["x"]
    nested = {deep = {er = true}}

    [[appup.up]]
    vsn_regex = "1\\\\.0\\\\..*"
    instructions = [
      {op = "update", module = "counter.server", change = "advanced", extra = "v1", timeout = 5},
      {op = "update", module = "counter.sup", supervisor = true},
      {op = "load_module", module = "counter.app"},
      {op = "add_module", module = "counter.new"},
      {op = "delete_module", module = "counter.old"},
      {op = "apply", module = "counter.app", function = "migrate", args = [1, "two"]},
      {op = "add_application", application = "stats"},
      {op = "remove_application", application = "legacy"},
      {op = "restart_application", application = "web"},
    ]

    [[appup.up]]
    vsn = "0.9"

    [[appup.down]]
    vsn = "1.0.0"
    [[appup.down.instructions]]
    op = "update"
    module = "counter.server"
    change = "advanced"
    timeout = inf
    pre_purge = "soft_purge"
    post_purge = "soft_purge"
    mod_type = "static"
    """
)


def test_a_full_spec_parses_to_the_expected_model(tmp_path: Path) -> None:
    spec = read_model(AppSpec, write(tmp_path, FULL))
    assert spec.key == "counter-1.1.0"
    assert spec.mod == StartCallback(module="counter.app", args={"port": 8080, "hosts": ["a", "b"]})
    assert spec.env == {"port": 8080, "ratio": 0.5, "tags": ["x"], "nested": {"deep": {"er": True}}}
    assert spec.applications == ["kernel"]
    assert spec.registered == ["counter_server"]
    up = spec.appup.up
    assert [e.vsn_regex for e in up] == ["1\\.0\\..*", None]
    assert up[1] == AppUpEntry(vsn="0.9", instructions=[])
    assert [type(i) for i in up[0].instructions] == [
        Update,
        Update,
        LoadModule,
        AddModule,
        DeleteModule,
        Apply,
        AddApplication,
        RemoveApplication,
        RestartApplication,
    ]
    server = up[0].instructions[0]
    assert server == Update(
        op="update",
        module="counter.server",
        change="advanced",
        extra="v1",
        timeout=5.0,
    )
    assert server.advanced
    assert server.effective_mod_type == "dynamic"
    apply = up[0].instructions[5]
    assert apply == Apply(op="apply", module="counter.app", function="migrate", args=[1, "two"])
    down = spec.appup.down[0].instructions[0]
    assert isinstance(down, Update)
    assert down.timeout == float("inf")
    assert (down.pre_purge, down.post_purge, down.effective_mod_type) == (
        "soft_purge",
        "soft_purge",
        "static",
    )


def test_a_minimal_spec_takes_the_defaults(tmp_path: Path) -> None:
    spec = read_model(AppSpec, write(tmp_path, 'name = "lib"\nvsn = "0.1"\n'))
    assert spec == AppSpec(name="lib", vsn="0.1")
    assert (spec.description, spec.modules, spec.registered, spec.applications) == ("", [], [], [])
    assert spec.mod is None
    assert spec.env == {}
    assert spec.appup == AppUp()
    assert StartCallback(module="m").args is None


def test_a_spec_is_frozen(tmp_path: Path) -> None:
    spec = read_model(AppSpec, write(tmp_path, HEAD))
    with pytest.raises(ValueError, match="frozen"):
        spec.vsn = "2.0"
