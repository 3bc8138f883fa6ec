"""Fixtures of the control socket tests: a short socket path, and no crash reports."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def socket_path() -> Iterator[Path]:
    """``<short dir>/node/control.sock``; the ``node`` folder does not exist yet.

    Under ``/tmp`` rather than ``tmp_path``: a Unix socket path must fit in 107 bytes.
    """
    base = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp"))
    try:
        yield base / "node" / "control.sock"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_crash_reports(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test in which any process (a connection, the server) crashed."""
    yield
    crashes = [r for r in caplog.records if getattr(r, "report", None) == "crash_report"]
    assert not crashes, [r.getMessage() for r in crashes]
