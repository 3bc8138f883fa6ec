"""A gen_server that defines only ``init``: the engine's defaults do the rest."""

from __future__ import annotations

from server.behaviours.gen_server_callbacks import InitResult, Ok


def init(args: object) -> InitResult:
    return Ok(args)
