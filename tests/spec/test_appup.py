"""Appup: OTP's defaults for each instruction, and the leftmost-match rule of version keys."""

from __future__ import annotations

import pytest

from server.errors import SpecError
from server.spec.appup import (
    AddApplication,
    AddModule,
    AppUp,
    AppUpEntry,
    DeleteModule,
    LoadModule,
    Update,
    version_matches,
)
from server.spec.files import parse_model


def test_update_defaults_are_otps() -> None:
    update = parse_model(Update, {"op": "update", "module": "m"}, "a.toml")
    assert update.change == "soft"
    assert not update.advanced
    assert (update.pre_purge, update.post_purge) == ("brutal_purge", "brutal_purge")
    assert update.effective_mod_type == "dynamic"
    assert (update.timeout, update.dep_mods, update.extra) == (None, [], None)


def test_a_supervisor_update_is_static_and_advanced() -> None:
    update = parse_model(Update, {"op": "update", "module": "sup", "supervisor": True}, "a.toml")
    assert update.advanced
    assert update.effective_mod_type == "static"
    assert (update.pre_purge, update.post_purge) == ("brutal_purge", "brutal_purge")


def test_an_explicit_mod_type_wins_over_the_supervisor_default() -> None:
    data = {"op": "update", "module": "sup", "supervisor": True, "mod_type": "dynamic"}
    assert parse_model(Update, data, "a.toml").effective_mod_type == "dynamic"


def test_an_advanced_update_carries_its_extra_and_an_int_timeout() -> None:
    data = {"op": "update", "module": "m", "change": "advanced", "extra": [1], "timeout": 3}
    update = parse_model(Update, data, "a.toml")
    assert update.advanced
    assert update.extra == [1]
    assert update.timeout == 3.0


@pytest.mark.parametrize(
    ("model", "op"),
    [
        pytest.param(LoadModule, "load_module", id="load_module"),
        pytest.param(AddModule, "add_module", id="add_module"),
        pytest.param(DeleteModule, "delete_module", id="delete_module"),
    ],
)
def test_module_instructions_default_to_no_dependencies(
    model: type[LoadModule | AddModule | DeleteModule], op: str
) -> None:
    instruction = parse_model(model, {"op": op, "module": "m"}, "a.toml")
    assert instruction.dep_mods == []


def test_load_module_purges_brutally_by_default() -> None:
    load = parse_model(LoadModule, {"op": "load_module", "module": "m"}, "a.toml")
    assert (load.pre_purge, load.post_purge) == ("brutal_purge", "brutal_purge")


def test_add_application_starts_permanent_by_default() -> None:
    add = parse_model(AddApplication, {"op": "add_application", "application": "a"}, "a.toml")
    assert add.type == "permanent"


def test_an_instruction_of_the_wrong_kind_for_its_model_is_refused() -> None:
    with pytest.raises(SpecError, match="op: Input should be 'update'"):
        parse_model(Update, {"op": "load_module", "module": "m"}, "a.toml")


# (pattern, version, matches): the leftmost match must be the whole version (OTP 3.1)
MATCHES = [
    pytest.param(r"1\.0", "1.0", True, id="exact"),
    pytest.param(r"1\.0", "1.0.3", False, id="prefix-only"),
    pytest.param(r"1\.0", "21.0", False, id="suffix-only"),
    pytest.param(r"0\.3", "1.0.3", False, id="inside"),
    pytest.param(r"1|1\.2", "1.2", False, id="leftmost-alternative-too-short"),
    pytest.param(r"1\.2|1", "1.2", True, id="leftmost-alternative-whole"),
    pytest.param(r"1\.0\..*", "1.0.3", True, id="wildcard"),
    pytest.param(r"1\.0\..*", "1.0", False, id="wildcard-needs-a-dot"),
    pytest.param(r"1\.[0-9]+", "1.10", True, id="class"),
    pytest.param(r"1\.[0-9]+?", "1.10", False, id="lazy-takes-the-shortest"),
    pytest.param(r"2|1\.0", "1.0", True, id="first-alternative-absent"),
    pytest.param(r"1.0", "1x0", True, id="dot-is-any-character"),
]


@pytest.mark.parametrize(("pattern", "vsn", "expected"), MATCHES)
def test_version_matches_uses_the_leftmost_match(pattern: str, vsn: str, expected: bool) -> None:
    assert version_matches(pattern, vsn) is expected
    entry = AppUpEntry(vsn_regex=pattern)
    assert entry.matches(vsn) is expected


def test_an_exact_key_is_never_a_pattern() -> None:
    entry = AppUpEntry(vsn="1.0")
    assert entry.matches("1.0")
    assert not entry.matches("1x0")
    assert not entry.matches("1.0.1")


def test_the_first_matching_entry_wins_in_each_direction() -> None:
    appup = AppUp(
        up=[
            AppUpEntry(vsn_regex=r"1\..*", instructions=[]),
            AppUpEntry(vsn="1.0.0", instructions=[Update(op="update", module="m")]),
        ],
        down=[
            AppUpEntry(vsn="1.0.0", instructions=[Update(op="update", module="m")]),
            AppUpEntry(vsn_regex=r"1\..*", instructions=[]),
        ],
    )
    assert appup.up_from("1.0.0") is appup.up[0]
    assert appup.down_to("1.0.0") is appup.down[0]
    assert appup.down_to("1.5") is appup.down[1]
    assert appup.up_from("2.0") is None
    assert appup.down_to("0.9") is None
