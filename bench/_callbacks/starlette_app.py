"""The Starlette application both servers serve in ``bench/asgi.py``: small JSON answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": 7, "name": "apple", "tags": ["fruit", "red"]})


app = Starlette(routes=[Route("/json", item)])
