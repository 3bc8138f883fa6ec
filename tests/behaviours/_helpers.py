"""The behaviour tests' waits: the shared ones of ``tests._support.waits``."""

from __future__ import annotations

from tests._support.waits import *  # noqa: F403
from tests._support.waits import __all__ as __all__
