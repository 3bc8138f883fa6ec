"""A supervisor callback module whose ``init`` returns the spec it is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.behaviours.supervisor_callbacks import SupervisorSpec


def init(args: SupervisorSpec) -> SupervisorSpec:
    return args
