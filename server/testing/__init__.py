"""Testing helpers shipped with the server: prove a release upgrade path before production.

``server.testing.upgrades`` holds the harness; ``server.testing.pytest_plugin`` (registered
through the ``pytest11`` entry point) gives its ``upgrade_harness`` fixture.
"""

from __future__ import annotations

from server.testing.upgrades import (
    Check,
    HarnessFactory,
    Step,
    UpgradeFailed,
    UpgradeHarness,
    UpgradePath,
    describe_report,
    open_harness,
)

__all__ = [
    "Check",
    "HarnessFactory",
    "Step",
    "UpgradeFailed",
    "UpgradeHarness",
    "UpgradePath",
    "describe_report",
    "open_harness",
]
