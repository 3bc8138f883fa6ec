"""A real upgrade of a gen_event handler module: every manager holding it migrates it.

The release ``alarms`` runs three event managers under one supervisor (child specs with
``modules="dynamic"``): ``alarm_events`` holds the handler ``alarms.journal`` twice (the
second under an id), ``audit_events`` holds it next to ``alarms.tally``, ``quiet_events``
holds ``alarms.tally`` only. The appup of 1.1.0 updates ``alarms.journal``: the installer
asks each manager which handler modules it holds (OTP's ``get_modules``), suspends the two
that hold it, migrates each journal handler (and only those) and resumes them.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from server import kernel
from server.behaviours import gen_event
from server.behaviours.gen_event_callbacks import Handler, HandlerState
from server.testing.upgrades import UpgradeFailed

if TYPE_CHECKING:
    from pathlib import Path

    from server.testing.upgrades import HarnessFactory

JOURNAL = Handler("alarms.journal")
TALLY = Handler("alarms.tally")

APP = '''
"""The alarms application: three event managers, their handlers added at start."""

from __future__ import annotations

from typing import Any

from server.behaviours import gen_event, supervisor
from server.kernel import Pid

__vsn__ = "1.0.0"  # unchanged in 1.1.0


async def start(start_type: str, args: Any) -> Pid:
    pid = await supervisor.start_link("alarms.sup", None, name="alarms_sup")
    assert pid is not None
    await gen_event.add_handler("alarm_events", "alarms.journal", "alarm")
    await gen_event.add_handler("alarm_events", ("alarms.journal", "copy"), "copy")
    await gen_event.add_handler("audit_events", "alarms.journal", "audit")
    await gen_event.add_handler("audit_events", "alarms.tally", None)
    await gen_event.add_handler("quiet_events", "alarms.tally", None)
    return pid


def stop(state: Any) -> None:
    return None
'''

SUP = '''
"""The top supervisor: three event managers, found by the release handler as dynamic."""

from __future__ import annotations

from server.behaviours import gen_event
from server.behaviours.supervisor_callbacks import SupervisorSpec

__vsn__ = "1.0.0"  # unchanged in 1.1.0


def init(args: object) -> SupervisorSpec:
    names = ["alarm_events", "audit_events", "quiet_events"]
    return SupervisorSpec(children=[gen_event.child_spec(n, n) for n in names])
'''

TALLY_SOURCE = '''
"""A handler that counts events; the same in every version (never updated)."""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_event_callbacks import Ok, Reply

__vsn__ = "1.0.0"  # unchanged in 1.1.0


def init(args: Any) -> Ok:
    return Ok(0)


def handle_event(event: Any, state: int) -> Ok:
    return Ok(state + 1)


def handle_call(request: Any, state: int) -> Reply:
    return Reply(state, state)
'''

JOURNAL_1 = '''
"""1.0.0: the journal keeps the events it saw."""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_event_callbacks import Ok, Reply

__vsn__ = "1.0.0"


def init(tag: Any) -> Ok:
    return Ok({"tag": tag, "events": []})


def handle_event(event: Any, state: dict[str, Any]) -> Ok:
    return Ok({**state, "events": [*state["events"], event]})


def handle_call(request: Any, state: dict[str, Any]) -> Reply:
    return Reply(__vsn__, state)
'''

JOURNAL_2 = '''
"""1.1.0: the journal also counts the events it saw (its state gains ``count``)."""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_event_callbacks import Ok, Reply

__vsn__ = "1.1.0"


def init(tag: Any) -> Ok:
    return Ok({"tag": tag, "events": [], "count": 0})


def handle_event(event: Any, state: dict[str, Any]) -> Ok:
    return Ok({**state, "events": [*state["events"], event], "count": state["count"] + 1})


def handle_call(request: Any, state: dict[str, Any]) -> Reply:
    return Reply(__vsn__, state)


def code_change(old_vsn: Any, state: dict[str, Any], extra: Any) -> dict[str, Any]:
    if old_vsn == ("down", "1.0.0"):  # a downgrade runs the newer version's code_change
        return {"tag": state["tag"], "events": state["events"]}
    assert (old_vsn, extra) == ("1.0.0", "count"), (old_vsn, extra)
    {broken}
    return {**state, "count": len(state["events"])}
'''

APPSPEC = """
name = "alarms"
vsn = "{vsn}"
description = "Event managers whose handlers are upgraded in place"
modules = ["alarms", "alarms.app", "alarms.sup", "alarms.journal", "alarms.tally"]
registered = ["alarms_sup", "alarm_events", "audit_events", "quiet_events"]
applications = []

[mod]
module = "alarms.app"
"""

APPUP = """
[[appup.up]]
vsn = "1.0.0"
instructions = [{op = "update", module = "alarms.journal", change = "advanced", extra = "count"}]

[[appup.down]]
vsn = "1.0.0"
instructions = [{op = "update", module = "alarms.journal", change = "advanced"}]
"""

SYS_CONFIG = """
[node]
name = "alarms"
release = "alarms-1.0.0"
control_socket = "run/control.sock"
log_level = "INFO"
apps_dir = "apps"
"""


def make_tree(root: Path, *, broken: str = "") -> Path:
    """Write the alarms release source tree (1.0.0 and 1.1.0) under ``root``.

    ``broken`` is a statement put into 1.1.0's ``code_change`` (to make it raise).
    """
    for vsn, journal in (("1.0.0", JOURNAL_1), ("1.1.0", JOURNAL_2)):
        package = root / "apps" / f"alarms-{vsn}" / "alarms"
        package.mkdir(parents=True)
        sources = {
            "__init__": '"""The alarms application."""\n',
            "app": APP,
            "sup": SUP,
            "tally": TALLY_SOURCE,
            "journal": journal.replace("{broken}", broken or "pass"),
        }
        for name, text in sources.items():
            (package / f"{name}.py").write_text(textwrap.dedent(text).lstrip())
        spec = textwrap.dedent(APPSPEC).lstrip().replace("{vsn}", vsn)
        (root / "appspecs").mkdir(exist_ok=True)
        (root / "appspecs" / f"alarms-{vsn}.toml").write_text(
            spec + (APPUP if vsn == "1.1.0" else "")
        )
        (root / "releases").mkdir(exist_ok=True)
        (root / "releases" / f"alarms-{vsn}.toml").write_text(
            f'name = "alarms"\nvsn = "{vsn}"\n\n[[applications]]\nname = "alarms"\nvsn = "{vsn}"\n'
        )
    (root / "sys.config").write_text(textwrap.dedent(SYS_CONFIG).lstrip())
    return root


async def _fire() -> None:
    for event in ("smoke", "heat"):
        await gen_event.sync_notify("alarm_events", event)
    await gen_event.sync_notify("audit_events", "login")
    await gen_event.sync_notify("quiet_events", "tick")


async def _whereis(name: str) -> object:
    return kernel.whereis(name)


def _by_handler(states: list[HandlerState]) -> dict[Handler, Any]:
    return {s.handler: s.state for s in states}


async def test_an_update_of_a_handler_module_migrates_it_in_every_manager_and_back_down(
    upgrade_harness: HarnessFactory, tmp_path: Path
) -> None:
    h = await upgrade_harness(["1.0.0", "1.1.0"], source=make_tree(tmp_path / "src"))
    await h.prepare(_fire)
    quiet_before = await h.state("quiet_events")

    report = await h.upgrade_to("1.1.0")

    managers = {
        repr(await h.prepare(_whereis, name)): name for name in ("alarm_events", "audit_events")
    }
    assert sorted(report.processes) == sorted((pid, "alarms.journal") for pid in managers), (
        "each manager holding the journal once, quiet_events (tally only) not at all"
    )
    alarm = _by_handler(await h.state("alarm_events"))
    assert alarm[JOURNAL] == {"tag": "alarm", "events": ["smoke", "heat"], "count": 2}
    assert alarm[Handler("alarms.journal", "copy")]["count"] == 2, "every handler of the module"
    audit = _by_handler(await h.state("audit_events"))
    assert audit[JOURNAL] == {"tag": "audit", "events": ["login"], "count": 1}
    assert audit[TALLY] == 1, "another handler of a migrated manager is left alone"
    assert await h.state("quiet_events") == quiet_before
    # the managers run on, with the new code on the migrated states
    assert await h.prepare(gen_event.call, "alarm_events", "alarms.journal", "vsn") == "1.1.0"
    await h.prepare(gen_event.sync_notify, "alarm_events", "flood")
    assert _by_handler(await h.state("alarm_events"))[JOURNAL]["count"] == 3

    down = await h.downgrade_to("1.0.0")
    assert sorted(down.processes) == sorted(report.processes)
    alarm = _by_handler(await h.state("alarm_events"))
    assert alarm[JOURNAL] == {"tag": "alarm", "events": ["smoke", "heat", "flood"]}
    assert await h.prepare(gen_event.call, "alarm_events", "alarms.journal", "vsn") == "1.0.0"


async def test_a_handler_code_change_that_raises_is_refused_at_check_and_changes_nothing(
    upgrade_harness: HarnessFactory, tmp_path: Path
) -> None:
    broken = 'if state["tag"] == "audit":\n        raise ValueError("no audit upgrade")'
    h = await upgrade_harness(["1.0.0", "1.1.0"], source=make_tree(tmp_path / "src", broken=broken))
    await h.prepare(_fire)
    before = {name: await h.state(name) for name in ("alarm_events", "audit_events")}
    with pytest.raises(UpgradeFailed, match="no audit upgrade") as info:
        await h.upgrade_to("1.1.0")
    assert info.value.phase == "check_install"
    assert "alarms.journal.code_change" in str(info.value)
    assert {name: await h.state(name) for name in before} == before
    assert await h.prepare(gen_event.call, "audit_events", "alarms.journal", "vsn") == "1.0.0"
