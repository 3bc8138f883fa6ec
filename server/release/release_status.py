"""Release statuses and how each release handler action changes them: the one place that decides.

The transition table (status of the release acted on, action) -> its next status:

================  ===========  ===============  ================  ===========
status / action   install      make_permanent   remove            boot
================  ===========  ===============  ================  ===========
``unpacked``      current      refused          removed           unpacked
``current``       refused      permanent        refused           unpacked
``permanent``     permanent    permanent        refused           permanent
``old``           current      refused          removed           old
================  ===========  ===============  ================  ===========

Side effects on the *other* releases: ``install`` turns the former ``current`` into ``old``;
``make_permanent`` turns the former ``permanent`` into ``old``. ``current`` is never
persisted (``on_disk`` writes it as ``unpacked``), so any restart boots the permanent release:
that is the whole rollback mechanism, as in OTP. A pure core: no I/O.
"""

from __future__ import annotations

from typing import Literal

from server.errors import StatusRefused

__all__ = ["TRANSITIONS", "Action", "Status", "StatusRefused", "next_statuses", "on_disk"]

Status = Literal["unpacked", "current", "permanent", "old"]
Action = Literal["install", "make_permanent", "remove", "boot"]

#: (status, action) -> next status, "removed", or None for refused.
TRANSITIONS: dict[tuple[Status, Action], Status | Literal["removed"] | None] = {
    ("unpacked", "install"): "current",
    ("unpacked", "make_permanent"): None,
    ("unpacked", "remove"): "removed",
    ("unpacked", "boot"): "unpacked",
    ("current", "install"): None,
    ("current", "make_permanent"): "permanent",
    ("current", "remove"): None,
    ("current", "boot"): "unpacked",
    ("permanent", "install"): "permanent",
    ("permanent", "make_permanent"): "permanent",
    ("permanent", "remove"): None,
    ("permanent", "boot"): "permanent",
    ("old", "install"): "current",
    ("old", "make_permanent"): None,
    ("old", "remove"): "removed",
    ("old", "boot"): "old",
}

_WHY = {
    ("current", "install"): "it is already installed and running",
    ("unpacked", "make_permanent"): "it is not installed: install it first",
    ("old", "make_permanent"): "it is not the running release: install it first",
    ("current", "remove"): "it is the running release: install another one first",
    ("permanent", "remove"): "it is the permanent release: make another one permanent first",
}


def next_statuses(statuses: dict[str, Status], vsn: str, action: Action) -> dict[str, Status]:
    """The statuses of every release after ``action`` on ``vsn`` (a new dict).

    Raises:
        KeyError: ``vsn`` is not a known release.
        StatusRefused: the table refuses the action for ``vsn``'s status.
    """
    status = statuses[vsn]
    target = TRANSITIONS[(status, action)]
    if target is None:
        raise StatusRefused(vsn, status, action, _WHY.get((status, action), "not allowed"))
    result = dict(statuses)
    if action == "install":
        for other, other_status in statuses.items():
            if other != vsn and other_status == "current":
                result[other] = "old"
    elif action == "make_permanent" and status != "permanent":
        for other, other_status in statuses.items():
            if other != vsn and other_status == "permanent":
                result[other] = "old"
    elif action == "boot":
        result = {v: "unpacked" if s == "current" else s for v, s in statuses.items()}
    if target == "removed":
        del result[vsn]
    else:
        result[vsn] = target
    return result


def on_disk(status: Status) -> Status:
    """What is written to RELEASES: ``current`` never is (a restart must roll it back)."""
    return "unpacked" if status == "current" else status
