"""Changes announced to the war room's server-sent event streams.

The remediation service announces from worker threads; each open stream has an asyncio
queue on the server's loop. A slow stream drops its oldest announcements rather than
holding memory: every announcement only says "re-read", so the newest is what matters.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

QUEUE_LIMIT = 64
HEARTBEAT_S = 15.0


class Broadcaster:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[bytes]]] = set()

    def publish(self, event: Mapping[str, Any]) -> None:
        message = b"event: change\ndata: " + orjson.dumps(dict(event)) + b"\n\n"
        with self._lock:
            streams = list(self._streams)
        for loop, queue in streams:
            try:
                loop.call_soon_threadsafe(_offer, queue, message)
            except RuntimeError:  # the stream's loop has closed
                with self._lock:
                    self._streams.discard((loop, queue))

    async def stream(self, *, heartbeat_s: float = HEARTBEAT_S) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._streams.add(entry)
        try:
            yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), heartbeat_s)
                except TimeoutError:
                    yield b": heartbeat\n\n"
        finally:
            with self._lock:
                self._streams.discard(entry)

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._streams)


def _offer(queue: asyncio.Queue[bytes], message: bytes) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(message)
