"""A FastAPI application served by the node's ASGI connection: routing, validation, streaming."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.net.test_asgi_connection import connected, get

if TYPE_CHECKING:
    from server.kernel import Node

APP = "tests.net.fastapi_app:app"


async def test_fastapi_routes_validates_and_streams_over_one_keep_alive_connection(
    node: Node,
) -> None:
    async def body() -> None:
        async with connected("", app_name=APP) as client:
            await client.send(get("/items/7?q=red"))
            answer = await client.answer()
            assert (answer.status, json.loads(answer.body)) == (200, {"item_id": 7, "q": "red"})
            payload = b'{"name": "apple", "quantity": 21}'
            await client.send(
                b"POST /items HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            answer = await client.answer()
            assert json.loads(answer.body) == {"created": "apple", "twice": 42}
            await client.send(
                b"POST /items HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                b"content-length: 2\r\n\r\n{}"
            )
            assert (await client.answer()).status == 422
            await client.send(get("/stream"))
            answer = await client.answer()
            assert answer.body == b"part 0\npart 1\npart 2\n"
            await client.send(get("/nowhere"))
            assert (await client.answer()).status == 404

    await node.run_process(body)
