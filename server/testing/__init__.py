"""Testing helpers shipped with the server: prove a release upgrade path before production.

``server.testing.upgrades`` is the public module (``UpgradePath``, ``UpgradeHarness``,
``HarnessFactory``, ``Step``, ``UpgradeFailed``, ``open_harness``); the pytest plugin,
``server.testing.pytest_plugin``, is registered through the package's ``pytest11`` entry
point and gives the ``upgrade_harness`` fixture.

This ``__init__`` re-exports nothing on purpose: pytest imports the plugin (and so this
package) at start-up in every project that has the server installed, and the harness pulls
in the whole runtime; it is imported when a test asks for the fixture instead.
"""

from __future__ import annotations

__all__: list[str] = []
