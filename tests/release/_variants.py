"""Test releases made from the demo: counter 1.0.0 with a store whose code_change misbehaves."""

from __future__ import annotations

import shutil
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def make_variant(root: Path, vsn: str, code_change: str, *, apply: str | None = None) -> None:
    """Add release demo ``vsn``: counter ``vsn``, whose store's ``code_change`` is given.

    ``code_change`` is the body of ``code_change(old_vsn, state, extra)``. ``apply`` names a
    function of ``counter.store`` the appup applies after the update.
    """
    source = root / "apps" / "counter-1.0.0"
    target = root / "apps" / f"counter-{vsn}"
    shutil.copytree(source, target)
    store = target / "counter" / "store.py"
    text = store.read_text()
    head, _, _ = text.partition("def code_change(")
    body = textwrap.indent(textwrap.dedent(code_change).strip(), "    ")
    store.write_text(
        head.replace('__vsn__ = "1.0.0"', f'__vsn__ = "{vsn}"')
        + ("async " if "await " in code_change else "")
        + "def code_change(old_vsn: Any, state: Any, extra: Any) -> Any:\n"
        + body
        + '\n\n\ndef explode() -> None:\n    raise RuntimeError("apply exploded")\n'
    )
    spec = (root / "appspecs" / "counter-1.0.0.toml").read_text()
    steps = '  {op = "update", module = "counter.store", change = "advanced"},\n'
    if apply is not None:
        steps += f'  {{op = "apply", module = "counter.store", function = "{apply}"}},\n'
    spec = spec.replace('vsn = "1.0.0"', f'vsn = "{vsn}"', 1) + (
        f'\n[[appup.up]]\nvsn = "1.0.0"\ninstructions = [\n{steps}]\n'
        f'\n[[appup.down]]\nvsn = "1.0.0"\ninstructions = [\n{steps}]\n'
    )
    (root / "appspecs" / f"counter-{vsn}.toml").write_text(spec)
    (root / "releases" / f"demo-{vsn}.toml").write_text(
        f'name = "demo"\nvsn = "{vsn}"\n\n[[applications]]\nname = "counter"\nvsn = "{vsn}"\n'
    )


JANITOR = '''"""A helper the supervisor of counter {vsn} adds: it only answers pings."""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_server_callbacks import Ok, Reply


def init(args: object) -> Ok:
    return Ok(0)


def handle_call(request: Any, from_: Any, state: int) -> Reply:
    return Reply("pong", state + 1)
'''


def make_supervisor_variant(root: Path, vsn: str) -> None:
    """Add release demo ``vsn``: counter's supervisor gains a child ``janitor`` (new module).

    Its appup: ``add_module counter.janitor`` and ``update counter.sup supervisor`` both
    ways, so the relup re-reads the supervisor's child specs on the way up and down.
    """
    source = root / "apps" / "counter-1.0.0"
    target = root / "apps" / f"counter-{vsn}"
    shutil.copytree(source, target)
    (target / "counter" / "janitor.py").write_text(JANITOR.format(vsn=vsn))
    sup = target / "counter" / "sup.py"
    sup.write_text(
        sup.read_text().replace(
            'worker("store", "counter.store", None, name="counter_store"), listener',
            'worker("store", "counter.store", None, name="counter_store"), listener,\n'
            '            worker("janitor", "counter.janitor", None, name="counter_janitor"),',
        )
    )
    spec = (root / "appspecs" / "counter-1.0.0.toml").read_text()
    spec = spec.replace('vsn = "1.0.0"', f'vsn = "{vsn}"', 1).replace(
        '"counter.web"]', '"counter.web", "counter.janitor"]'
    )
    up = (
        '  {op = "add_module", module = "counter.janitor"},\n'
        '  {op = "update", module = "counter.sup", supervisor = true},\n'
    )
    down = (
        '  {op = "update", module = "counter.sup", supervisor = true},\n'
        '  {op = "delete_module", module = "counter.janitor"},\n'
    )
    spec += (
        f'\n[[appup.up]]\nvsn = "1.0.0"\ninstructions = [\n{up}]\n'
        f'\n[[appup.down]]\nvsn = "1.0.0"\ninstructions = [\n{down}]\n'
    )
    (root / "appspecs" / f"counter-{vsn}.toml").write_text(spec)
    (root / "releases" / f"demo-{vsn}.toml").write_text(
        f'name = "demo"\nvsn = "{vsn}"\n\n[[applications]]\nname = "counter"\nvsn = "{vsn}"\n'
    )


def make_restart_variant(root: Path, vsn: str) -> None:
    """Add release demo ``vsn``: counter ``vsn`` whose appup restarts the application."""
    shutil.copytree(root / "apps" / "counter-1.0.0", root / "apps" / f"counter-{vsn}")
    spec = (root / "appspecs" / "counter-1.0.0.toml").read_text()
    steps = '  {op = "restart_application", application = "counter"},\n'
    spec = spec.replace('vsn = "1.0.0"', f'vsn = "{vsn}"', 1) + (
        f'\n[[appup.up]]\nvsn = "1.0.0"\ninstructions = [\n{steps}]\n'
        f'\n[[appup.down]]\nvsn = "1.0.0"\ninstructions = [\n{steps}]\n'
    )
    (root / "appspecs" / f"counter-{vsn}.toml").write_text(spec)
    (root / "releases" / f"demo-{vsn}.toml").write_text(
        f'name = "demo"\nvsn = "{vsn}"\n\n[[applications]]\nname = "counter"\nvsn = "{vsn}"\n'
    )
