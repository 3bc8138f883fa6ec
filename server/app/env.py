"""Application environments: one table per application, read without a message.

The application controller is the only writer (like OTP's ``ac_tab``); any process reads.
An application's env is its spec's ``env`` overridden by the ``sys.config`` table of the
same name. ``env_diff`` is the pure core of ``config_change``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["env_diff", "get_all_env", "get_env", "merge_env"]

_MISSING = object()
_tables: dict[str, dict[str, Any]] = {}


def get_env(application: str, key: str, default: Any = None) -> Any:
    """The value of ``key`` in ``application``'s env, or ``default``."""
    return _tables.get(application, {}).get(key, default)


def get_all_env(application: str) -> dict[str, Any]:
    """A copy of the whole env of ``application`` (empty if it is not loaded)."""
    return dict(_tables.get(application, {}))


def merge_env(spec_env: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's env with ``sys.config``'s overrides on top."""
    merged = dict(spec_env)
    merged.update(overrides)
    return merged


def env_diff(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """What ``config_change`` receives: (changed, new, removed) between two envs."""
    changed = {k: v for k, v in new.items() if k in old and old[k] != v}
    added = {k: v for k, v in new.items() if k not in old}
    removed = sorted(k for k in old if k not in new)
    return changed, added, removed


def _set_table(application: str, env: dict[str, Any]) -> None:
    _tables[application] = dict(env)


def _drop_table(application: str) -> None:
    _tables.pop(application, None)


def _clear() -> None:
    _tables.clear()
