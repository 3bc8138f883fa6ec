"""A supervisor whose ``init`` returns the spec it is given (as OTP's supervisor_SUITE does).

``start_link(sup_given, SupervisorSpec(...))`` runs a supervisor with exactly that spec;
``Ignore()`` makes the start return None. Anything else is returned as is, which the
supervisor rejects as a bad ``init`` result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.behaviours.gen_server_callbacks import Ignore
    from server.behaviours.supervisor_callbacks import SupervisorSpec


def init(args: SupervisorSpec | Ignore) -> SupervisorSpec | Ignore:
    return args
