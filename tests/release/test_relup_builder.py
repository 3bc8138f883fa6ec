"""The relup builder against OTP's own worked examples (systools_rc) and its error rules."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from server.errors import BuildError, InstallRefused
from server.release._installer import _check_script
from server.release.relup_builder import make_relup
from server.release.source_tree import SourceTree
from server.spec.app_spec import AppSpec
from server.spec.release_spec import ReleaseSpec
from server.spec.release_view import ReleaseView
from server.spec.relup import Relup

if TYPE_CHECKING:
    from pathlib import Path

    from server.spec.relup import LowInstruction


def app(name: str, vsn: str, modules: list[str], **extra: Any) -> AppSpec:
    return AppSpec.model_validate({"name": name, "vsn": vsn, "modules": modules, **extra})


def release(vsn: str, *apps: AppSpec, types: dict[str, str] | None = None) -> ReleaseView:
    types = types or {}
    spec = ReleaseSpec.model_validate(
        {
            "name": "rel",
            "vsn": vsn,
            "applications": [
                {"name": a.name, "vsn": a.vsn, "type": types.get(a.name, "permanent")} for a in apps
            ],
        }
    )
    return ReleaseView(spec=spec, apps={a.name: a for a in apps})


def render(script: list[LowInstruction]) -> list[str]:
    """A compact text form of a script, close to how OTP prints one."""
    out: list[str] = []
    for step in script:
        data = step.model_dump()
        op = data.pop("op")
        match op:
            case "load_object_code":
                out.append(
                    f"load_object_code {data['application']} {data['vsn']} "
                    f"{','.join(data['modules'])}"
                )
            case "point_of_no_return":
                out.append(op)
            case "suspend":
                mods = [
                    m["module"] + (f"/{m['timeout']:g}" if m["timeout"] else "")
                    for m in data["modules"]
                ]
                out.append(f"suspend {','.join(mods)}")
            case "load":
                purge = (
                    ""
                    if data["pre_purge"] == data["post_purge"] == "brutal_purge"
                    else (f"({data['pre_purge']},{data['post_purge']})")
                )
                out.append(f"load {data['module']}{purge}")
            case "remove":
                out.append(f"remove {data['module']}")
            case "purge" | "resume":
                out.append(f"{op} {','.join(data['modules'])}")
            case "code_change":
                mods = [f"{m['module']}={m['extra']}" for m in data["modules"]]
                out.append(f"code_change {data['mode']} {','.join(mods)}")
            case "apply":
                out.append(f"apply {data['module']}.{data['function']}{tuple(data['args'])}")
            case _:
                out.append(f"{op} {data}")
    return out


UP_SCRIPT = [
    {"op": "update", "module": "m1", "change": "advanced", "extra": "e1", "dep_mods": ["m2"]},
    {"op": "update", "module": "m2", "change": "advanced", "extra": "e2", "dep_mods": ["m3"]},
    {"op": "load_module", "module": "m4"},
    {"op": "update", "module": "m3", "change": "soft"},
    {"op": "add_module", "module": "newm"},
    {"op": "delete_module", "module": "oldm"},
    {"op": "update", "module": "m5", "supervisor": True},
    {"op": "apply", "module": "io", "function": "format", "args": ["hi"]},
]

DOWN_SCRIPT = [
    {"op": "update", "module": "m1", "change": "advanced", "extra": "e1", "dep_mods": ["m2"]},
    {"op": "update", "module": "m2", "change": "advanced", "extra": "e2", "dep_mods": ["m3"]},
    {"op": "update", "module": "m3", "change": "soft"},
    {"op": "update", "module": "m5", "supervisor": True},
    {"op": "update", "module": "m6", "mod_type": "static", "change": "advanced", "extra": "x"},
    {
        "op": "update",
        "module": "m4",
        "mod_type": "dynamic",
        "timeout": 3.0,
        "change": "advanced",
        "extra": "y",
        "pre_purge": "soft_purge",
        "post_purge": "soft_purge",
        "dep_mods": ["m6"],
    },
    {"op": "add_module", "module": "oldm"},
    {"op": "delete_module", "module": "newm"},
]

OLD_MODULES = ["m1", "m2", "m3", "m4", "m5", "m6", "oldm"]
NEW_MODULES = ["m1", "m2", "m3", "m4", "m5", "m6", "newm"]


def otp_example() -> tuple[ReleaseView, ReleaseView]:
    old = app("a", "1", OLD_MODULES)
    new = app(
        "a",
        "2",
        NEW_MODULES,
        appup={
            "up": [{"vsn": "1", "instructions": UP_SCRIPT}],
            "down": [{"vsn": "1", "instructions": DOWN_SCRIPT}],
        },
    )
    return release("2", new), release("1", old)


def test_the_up_script_of_otps_worked_example() -> None:
    top, base = otp_example()
    relup = make_relup(top, [base], [])
    assert relup.vsn == "2"
    entry = relup.up_from("1")
    assert entry is not None
    assert render(entry.instructions) == [
        "load_object_code a 2 m1,m2,m3,m4,newm,m5",
        "point_of_no_return",
        "suspend m1,m2,m3",
        "load m3",
        "load m2",
        "load m1",
        "code_change up m1=e1,m2=e2",
        "resume m3,m2,m1",
        "load m4",
        "load newm",
        "remove oldm",
        "purge oldm",
        "suspend m5",
        "load m5",
        "code_change up m5=None",
        "resume m5",
        "apply io.format('hi',)",
    ]


def test_the_down_script_of_otps_worked_example() -> None:
    top, base = otp_example()
    entry = make_relup(top, [], [base]).down_to("1")
    assert entry is not None
    assert render(entry.instructions)[1:] == [
        "point_of_no_return",
        "suspend m1,m2,m3",
        "code_change down m1=e1,m2=e2",
        "load m1",
        "load m2",
        "load m3",
        "resume m3,m2,m1",
        "suspend m5",
        "load m5",
        "code_change down m5=None",
        "resume m5",
        "suspend m4/3,m6",
        "code_change down m4=y",
        "load m4(soft_purge,soft_purge)",
        "load m6",
        "code_change down m6=x",
        "resume m6,m4",
        "load oldm",
        "remove newm",
        "purge newm",
    ]
    assert render(entry.instructions)[0] == "load_object_code a 1 m1,m2,m3,m5,m4,m6,oldm"


def test_applications_added_first_and_removed_last_both_ways() -> None:
    common_old = app("web", "1", ["web.h"])
    common_new = app(
        "web",
        "2",
        ["web.h"],
        appup={
            "up": [{"vsn": "1", "instructions": [{"op": "load_module", "module": "web.h"}]}],
            "down": [{"vsn": "1", "instructions": [{"op": "load_module", "module": "web.h"}]}],
        },
    )
    stats = app("stats", "1", ["stats.app", "stats.server"])
    legacy = app("legacy", "1", ["legacy.m"])
    top = release("2", common_new, stats, types={"stats": "transient"})
    base = release("1", common_old, legacy)
    relup = make_relup(top, [base], [base])
    up, down = relup.up_from("1"), relup.down_to("1")
    assert up is not None
    assert down is not None
    assert render(up.instructions) == [
        "load_object_code stats 1 stats.app,stats.server",
        "load_object_code web 2 web.h",
        "point_of_no_return",
        "load stats.app",
        "load stats.server",
        "apply server.app.start_application('stats', 'transient')",
        "load web.h",
        "apply server.app.stop_application('legacy',)",
        "remove legacy.m",
        "purge legacy.m",
        "apply server.app.unload_application('legacy',)",
    ]
    assert render(down.instructions) == [
        "load_object_code legacy 1 legacy.m",
        "load_object_code web 1 web.h",
        "point_of_no_return",
        "load legacy.m",
        "apply server.app.start_application('legacy', 'permanent')",
        "load web.h",
        "apply server.app.stop_application('stats',)",
        "remove stats.app",
        "remove stats.server",
        "purge stats.app,stats.server",
        "apply server.app.unload_application('stats',)",
    ]


def test_restart_application_stops_reloads_and_starts() -> None:
    old = app("a", "1", ["a.x", "a.gone"])
    new = app(
        "a",
        "2",
        ["a.x", "a.fresh"],
        appup={
            "up": [
                {
                    "vsn_regex": "1(\\..*)?",
                    "instructions": [{"op": "restart_application", "application": "a"}],
                }
            ],
        },
    )
    entry = make_relup(release("2", new), [release("1", old)], []).up_from("1")
    assert entry is not None
    assert render(entry.instructions) == [
        "load_object_code a 2 a.x,a.fresh",
        "point_of_no_return",
        "apply server.app.stop_application('a',)",
        "remove a.x",
        "remove a.gone",
        "purge a.x,a.gone",
        "load a.x",
        "load a.fresh",
        "apply server.app.start_application('a', 'permanent')",
    ]


def test_a_dependency_cycle_keeps_appup_order() -> None:
    old = app("a", "1", ["p", "q"])
    new = app(
        "a",
        "2",
        ["p", "q"],
        appup={
            "up": [
                {
                    "vsn": "1",
                    "instructions": [
                        {"op": "update", "module": "q", "change": "advanced", "dep_mods": ["p"]},
                        {"op": "update", "module": "p", "change": "advanced", "dep_mods": ["q"]},
                    ],
                }
            ]
        },
    )
    entry = make_relup(release("2", new), [release("1", old)], []).up_from("1")
    assert entry is not None
    assert render(entry.instructions)[2:] == [
        "suspend q,p",
        "load p",
        "load q",
        "code_change up q=None,p=None",
        "resume p,q",
    ]


def test_an_unchanged_application_contributes_nothing() -> None:
    same = app("a", "1", ["m"])
    entry = make_relup(release("2", same), [release("1", same)], []).up_from("1")
    assert entry is not None
    assert render(entry.instructions) == ["point_of_no_return"]


@pytest.mark.parametrize(
    ("instructions", "expected"),
    [
        pytest.param([], "no up entry for 1", id="no-appup-entry"),
        pytest.param(
            [{"op": "load_module", "module": "m"}, {"op": "update", "module": "m"}],
            "more than one instruction",
            id="muldef",
        ),
        pytest.param(
            [{"op": "load_module", "module": "m", "dep_mods": ["n"]}],
            "dependency n has no instruction",
            id="undef-dependency",
        ),
        pytest.param(
            [{"op": "load_module", "module": "stranger"}],
            "no application of release 2 lists it",
            id="unknown-module",
        ),
        pytest.param(
            [{"op": "remove_application", "application": "a"}],
            "still in the target release",
            id="remove-present",
        ),
    ],
)
def test_build_errors_name_the_problem(instructions: list[dict[str, Any]], expected: str) -> None:
    up = [{"vsn": "1", "instructions": instructions}] if instructions else []
    new = app("a", "2", ["m", "n"], appup={"up": up})
    with pytest.raises(BuildError, match=expected):
        make_relup(release("2", new), [release("1", app("a", "1", ["m", "n"]))], [])


def test_releases_needing_other_python_distributions_get_restart_new_emulator(
    demo_tree: Path,
) -> None:
    spec = demo_tree / "appspecs" / "counter-1.1.0.toml"
    spec.write_text(
        spec.read_text().replace(
            "applications = []", 'applications = []\nrequires = ["packaging>=20"]'
        )
    )
    tree = SourceTree(demo_tree)
    relup = make_relup(
        tree.view("demo", "1.1.0"), [tree.view("demo", "1.0.0")], [tree.view("demo", "1.0.0")]
    )
    for entry in (*relup.up, *relup.down):
        assert [step.op for step in entry.instructions] == ["restart_new_emulator"]


def _with_explicit(instruction: dict[str, Any]) -> tuple[ReleaseView, ReleaseView]:
    """web changes (its appup writes ``instruction`` too), stats is new, legacy is gone."""
    web_new = app(
        "web",
        "2",
        ["web.h"],
        appup={
            "up": [
                {
                    "vsn": "1",
                    "instructions": [{"op": "load_module", "module": "web.h"}, instruction],
                }
            ]
        },
    )
    stats = app("stats", "1", ["stats.app"])
    legacy = app("legacy", "1", ["legacy.m"])
    return release("2", web_new, stats), release("1", app("web", "1", ["web.h"]), legacy)


def test_an_explicit_remove_application_is_merged_with_the_derived_one() -> None:
    top, base = _with_explicit({"op": "remove_application", "application": "legacy"})
    entry = make_relup(top, [base], []).up_from("1")
    assert entry is not None
    steps = render(entry.instructions)
    assert steps.count("apply server.app.stop_application('legacy',)") == 1
    assert steps[-4:] == [
        "apply server.app.stop_application('legacy',)",
        "remove legacy.m",
        "purge legacy.m",
        "apply server.app.unload_application('legacy',)",
    ]


def test_an_explicit_add_application_is_merged_and_its_start_type_kept() -> None:
    top, base = _with_explicit(
        {"op": "add_application", "application": "stats", "type": "temporary"}
    )
    entry = make_relup(top, [base], []).up_from("1")
    assert entry is not None
    steps = render(entry.instructions)
    starts = [step for step in steps if "start_application" in step]
    assert starts == ["apply server.app.start_application('stats', 'temporary')"]
    assert steps.index(starts[0]) < steps.index("load web.h")  # added first, as derived


def test_an_explicit_add_of_an_application_both_releases_have_is_refused() -> None:
    top, base = _with_explicit({"op": "add_application", "application": "web"})
    with pytest.raises(BuildError, match="add_application web: web is in the release being left"):
        make_relup(top, [base], [])


def test_the_install_check_refuses_a_relup_that_stops_an_application_twice() -> None:
    stop = {"op": "apply", "module": "server.app", "function": "stop_application", "args": ["a"]}
    steps = [
        *Relup.model_validate(
            {
                "vsn": "2",
                "up": [{"vsn": "1", "instructions": [{"op": "point_of_no_return"}, stop, stop]}],
                "down": [],
            }
        )
        .up[0]
        .instructions
    ]
    target = SimpleNamespace(vsn="2", spec=SimpleNamespace(app=lambda _name: None))
    with pytest.raises(InstallRefused, match="stop_application a twice in a row"):
        _check_script(steps, target)  # type: ignore[arg-type]
