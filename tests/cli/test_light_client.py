"""A command that only talks to a running node does not load what a node is made of.

Every ``server status`` (or ``stop``, ``releases``...) is a new OS process: importing the
node's boot, the release handler, the distribution, the observer and the HTTP stack cost it
about 0.85 s of CPU before a byte went to the control socket; the CLI now loads them only
for the commands that run a node here (``server.cli._local``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# what the node is made of: none of these may be imported by the client path
NODE_ONLY = (
    "server.node._boot",
    "server.node._commands",
    "server.release.handler",
    "server.release._installer",
    "server.dist",
    "server.cluster",
    "server.observer",
    "server.net",
    "server.heart",
    "server.dev",
    "server.control.server",
    "server.behaviours",
)


def _loaded_after(code: str) -> list[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def test_the_cli_loads_no_part_of_a_node_to_talk_to_one() -> None:
    loaded = _loaded_after("import server.cli")
    heavy = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in NODE_ONLY)]
    assert heavy == []


@pytest.mark.parametrize("name", ["run_node", "control_service", "RESTART_NEW_PROCESS"])
def test_the_node_packages_lazy_names_load_on_first_use(name: str) -> None:
    loaded = _loaded_after(f"import server.node\nserver.node.{name}")
    assert "server.node._boot" in loaded or "server.node._commands" in loaded


def test_an_unknown_name_of_a_lazy_package_is_an_attribute_error() -> None:
    import server.control
    import server.node

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = server.node.nothing
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = server.control.nothing
