"""The supervisor of the application's own processes: the notes store."""

from __future__ import annotations

from server.behaviours.supervisor_callbacks import SupervisorSpec, worker

__vsn__ = "1.0.0"


def init(args: object) -> SupervisorSpec:
    """One child: the store, registered as ``notes_store``."""
    return SupervisorSpec(
        children=[worker("store", "notes.store", None, name="notes_store")],
        strategy="one_for_one",
        intensity=5,
        period=10.0,
    )
