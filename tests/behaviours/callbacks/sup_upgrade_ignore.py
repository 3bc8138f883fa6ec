"""A version of ``sup_upgrade`` whose ``init`` returns ``Ignore()``: a code change to it
leaves the supervisor as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel
from server.behaviours.gen_server_callbacks import Ignore

if TYPE_CHECKING:
    from server.kernel import Pid


def init(collector: Pid) -> Ignore:
    kernel.send(collector, ("init", "ignore"))
    return Ignore()
