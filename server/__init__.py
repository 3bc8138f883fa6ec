"""A hot code-loading application server for Python: OTP's way of running and upgrading code."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
