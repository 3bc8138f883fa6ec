"""Relup: the low-level instructions (usually written by the relup builder, as JSON)."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import SpecError
from server.spec.files import parse_model
from server.spec.relup import (
    ApplyCall,
    CodeChange,
    LoadObjectCode,
    ModuleLoad,
    PointOfNoReturn,
    Relup,
    SuspendModule,
    SuspendModules,
)


def relup(*instructions: dict[str, Any]) -> dict[str, Any]:
    return {"vsn": "2.0", "up": [{"vsn": "1.0", "instructions": list(instructions)}]}


NO_RETURN = {"op": "point_of_no_return"}

MISTAKES = [
    pytest.param(
        relup({"op": "jump"}), "up[0].instructions[0].op", "unknown op 'jump'", id="unknown-op"
    ),
    pytest.param(
        relup(NO_RETURN, {"op": "purge"}),
        "up[0].instructions[1].modules",
        "required, missing",
        id="purge-without-modules",
    ),
    pytest.param(
        relup({"op": "load", "module": "m", "when": 1}),
        "up[0].instructions[0].when",
        "unknown key",
        id="unknown-key-in-instruction",
    ),
    pytest.param(
        relup({"op": "suspend", "modules": [{"module": "m", "timeout": -1}]}),
        "up[0].instructions[0].modules[0].timeout",
        "greater than 0",
        id="negative-suspend-timeout",
    ),
    pytest.param(
        relup({"op": "suspend", "modules": ["m"]}),
        "up[0].instructions[0].modules[0]",
        "valid dictionary",
        id="suspend-bare-module",
    ),
    pytest.param(
        relup({"op": "code_change", "mode": "sideways", "modules": []}),
        "up[0].instructions[0].mode",
        "'up' or 'down'",
        id="code-change-mode",
    ),
    pytest.param(
        relup({"op": "load_object_code", "application": "a", "vsn": "1 0", "modules": []}),
        "up[0].instructions[0].vsn",
        "a version",
        id="object-code-vsn",
    ),
    pytest.param(
        relup({"op": "apply", "module": "m", "function": "f g"}),
        "up[0].instructions[0].function",
        "should match pattern",
        id="apply-function",
    ),
    pytest.param(
        {"vsn": "2.0", "up": [{"instructions": []}]}, "up[0].vsn", "required", id="entry-vsn"
    ),
    pytest.param({"up": []}, "vsn", "required", id="relup-vsn"),
]


@pytest.mark.parametrize(("data", "field", "expected"), MISTAKES)
def test_a_bad_relup_names_the_field(data: dict[str, Any], field: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_model(Relup, data, "relup.json")
    assert type(caught.value) is SpecError
    assert caught.value.path == "relup.json"
    assert any(where == field and expected in what for where, what in caught.value.problems), (
        caught.value.problems
    )


def test_a_good_relup_parses_and_finds_entries_by_exact_vsn() -> None:
    data = relup(
        {"op": "load_object_code", "application": "a", "vsn": "2.0", "modules": ["m"]},
        NO_RETURN,
        {"op": "suspend", "modules": [{"module": "m", "timeout": 5}, {"module": "n"}]},
        {"op": "load", "module": "m"},
        {"op": "code_change", "mode": "up", "modules": [{"module": "m", "extra": "x"}]},
        {"op": "apply", "module": "server.app.controller", "function": "start_application"},
    )
    parsed = parse_model(Relup, data, "relup.json")
    script = parsed.up[0].instructions
    assert [type(i) for i in script] == [
        LoadObjectCode,
        PointOfNoReturn,
        SuspendModules,
        ModuleLoad,
        CodeChange,
        ApplyCall,
    ]
    assert script[2] == SuspendModules(
        op="suspend", modules=[SuspendModule(module="m", timeout=5.0), SuspendModule(module="n")]
    )
    load = script[3]
    assert isinstance(load, ModuleLoad)
    assert (load.pre_purge, load.post_purge) == ("brutal_purge", "brutal_purge")
    assert parsed.up_from("1.0") is parsed.up[0]
    assert parsed.up_from("1.0.0") is None, "relup keys are exact, never patterns"
    assert parsed.down_to("1.0") is None
