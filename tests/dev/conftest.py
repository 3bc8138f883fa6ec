"""Fixtures of the dev reloader tests: the code server tests' application tree."""

from __future__ import annotations

from tests.code_server.conftest import app

__all__ = ["app"]
