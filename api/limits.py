"""Refuse request bodies over the configured size before the app sees them.

A declared ``Content-Length`` over the limit is refused at once. A body without one
(chunked) is read first, up to one byte over the limit, and handed to the app only when it
fits: the app never runs, and so never acts, on a body it would have refused.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_S = 0.5
DRAIN_FACTOR = 8


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self._max:
                await self._refuse(send)
                return
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                if message.get("more_body", False):
                    await self._drain(receive)
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    async def _drain(self, receive: Receive) -> None:
        """Read (and drop) what the client is still sending, for a moment: closing on
        unread bytes resets the connection, and the client may never see the 413."""
        deadline = time.monotonic() + DRAIN_S
        dropped = 0
        while dropped <= DRAIN_FACTOR * self._max:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            dropped += len(message.get("body", b""))

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps({"detail": f"request body over {self._max} bytes"})
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
