"""Find ``erl``/``erlc`` for tests that use real erts, and run an Erlang module as a port.

``require_erl()`` skips the test when they are missing, except on CI (``CI=true``), where
it fails: CI installs Erlang, so a missing ``erl`` there is a broken setup, not a skip.
``ErlPort`` runs ``Module:main/0`` in ``erl -noinput`` speaking ``{packet, 4}`` over stdio;
it is stopped by closing its input (the module halts at end of input), else killed by pid.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

_LENGTH = struct.Struct(">I")


def require_erl() -> tuple[str, str]:
    """The paths of ``erl`` and ``erlc``; skips (or fails on CI) when either is missing."""
    erl, erlc = shutil.which("erl"), shutil.which("erlc")
    if erl is not None and erlc is not None:
        return erl, erlc
    if os.environ.get("CI") == "true":
        pytest.fail("erl/erlc not found but CI=true: install erlang-base", pytrace=False)
    pytest.skip("erl/erlc not installed")


class ErlPort:
    """An ``erl`` OS process running ``module:main()``, one ``{packet, 4}`` packet at a time."""

    def __init__(self, source: Path, build_dir: Path) -> None:
        erl, erlc = require_erl()
        subprocess.run([erlc, "-o", str(build_dir), str(source)], check=True, timeout=60)
        self.process = subprocess.Popen(
            [erl, "-noinput", "-pa", str(build_dir), "-run", source.stem, "main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def request(self, payload: bytes) -> bytes:
        """Send one packet and read the one packet that answers it."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(_LENGTH.pack(len(payload)) + payload)
        stdin.flush()
        header = stdout.read(4)
        if len(header) < 4:
            raise RuntimeError(f"erl exited (status {self.process.poll()}) instead of answering")
        (size,) = _LENGTH.unpack(header)
        body = stdout.read(size)
        if len(body) < size:
            raise RuntimeError("erl exited in the middle of an answer")
        return body

    def stop(self) -> None:
        """Close its input so it halts; kill it by pid if it has not within 10 s."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
