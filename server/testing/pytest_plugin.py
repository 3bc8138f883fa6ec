"""The pytest plugin of ``server.testing``: the ``upgrade_harness`` fixture.

Registered through the package's ``pytest11`` entry point, so installing the package is
enough (do not also list it in ``pytest_plugins``: pytest would refuse it twice). The
fixture is async: run the tests on anyio's ``asyncio`` backend (``anyio_mode = "auto"``,
or ``@pytest.mark.anyio`` with an ``anyio_backend`` fixture returning ``"asyncio"``).

The harness module is imported when a test asks for the fixture, not when pytest starts:
a project that merely has the package installed pays nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from server.testing.upgrades import HarnessFactory


@pytest.fixture
async def upgrade_harness(request: pytest.FixtureRequest) -> AsyncIterator[HarnessFactory]:
    """Boot release versions from the project's sources and move between them.

    ``h = await upgrade_harness(["1.0.0", "1.1.0"], env={"counter": {"port": 0}})``; the
    source tree defaults to pytest's root directory. Every harness made is closed (its node
    stopped, its temporary directory removed) when the test ends, passed or failed. See
    ``server.testing.upgrades`` for the whole API and an example.
    """
    from server.testing.upgrades import HarnessFactory  # here: see the module docstring

    async with HarnessFactory(default_source=request.config.rootpath) as factory:
        yield factory
