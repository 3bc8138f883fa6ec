"""The install's event feed: each step of a running install, sent to whoever watches.

The installer publishes an ``InstallEvent`` before each instruction of the script, one
when it is done and one when it fails (with the error), in the install's process. A
watcher (the observer) registers the name ``FEED_NAME`` and receives them as messages;
with no process under that name, publishing costs one registry look-up and sends nothing.
One watcher at a time: the name is the subscription, and a watcher that fans out to many
(pages open in browsers) does so itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, final

from server import kernel

__all__ = ["FEED_NAME", "InstallEvent", "publish"]

#: The registered name whose process receives every ``InstallEvent``.
FEED_NAME: Final = "install_feed"


@final
@dataclass(frozen=True, slots=True)
class InstallEvent:
    """One moment of an install.

    Attributes:
        from_vsn: the release running when the install began.
        to_vsn: the release being installed.
        step: the instruction about to run (``suspend``, ``load``, ``code_change``...),
            ``done`` at the end, or the failing instruction.
        index: how many instructions ran before this one.
        total: how many the script has.
        suspended: processes suspended at that moment.
        migrated: processes whose state was migrated so far (``code_change`` passed).
        error: why it failed, on the failure's event; None otherwise.
        outcome: ``running``, ``done``, or the failure's outcome (``rolled_back``,
            ``restarting``).
    """

    from_vsn: str
    to_vsn: str
    step: str
    index: int
    total: int
    suspended: int
    migrated: int
    error: str | None = None
    outcome: str = "running"

    def as_json(self) -> dict[str, Any]:
        """The event as plain data."""
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


def publish(event: InstallEvent) -> None:
    """Send ``event`` to the process registered as ``FEED_NAME``, if there is one."""
    watcher = kernel.whereis(FEED_NAME)
    if watcher is not None:
        kernel.send(watcher, event)
