"""``Idempotency-Key``: a request made twice (in a row or at the same moment) acts once.

The first request claims the key in its own transaction; a second one, seeing the claim,
waits for the first to finish and gets the same answer. A key is the caller's: the same
key with a different request is refused rather than answered with another's result.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from revleak.remediation.context import ConflictError, Shared
from revleak.remediation.store import IdempotencyRow

Answer = tuple[int, dict[str, Any]]
POLL_S = 0.02


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


class IdempotentCalls:
    def __init__(self, shared: Shared, *, wait_s: float = 30.0) -> None:
        self._shared = shared
        self._wait_s = wait_s

    def call(
        self, key: str, *, actor: str, request: str, act: Callable[[], Answer]
    ) -> tuple[Answer, bool]:
        """The answer, and whether it is a replay of an earlier request's."""
        # A key is its caller's: hashed with the actor, it also fits any database's text.
        scoped = hashlib.sha256(b"\0".join((actor.encode(), key.encode()))).hexdigest()
        try:
            with self._shared.sessions.begin() as session:
                session.add(
                    IdempotencyRow(
                        key=scoped,
                        actor=actor,
                        request=request,
                        created_at=self._shared.clock(),
                        response={},
                    )
                )
        except IntegrityError:
            return self._replay(scoped, request), True
        try:
            status, body = act()
        except BaseException:
            # Nothing was answered: let a retry with the same key try again.
            with self._shared.sessions.begin() as session:
                row = session.get(IdempotencyRow, scoped)
                if row is not None:
                    session.delete(row)
            raise
        with self._shared.sessions.begin() as session:
            row = session.get(IdempotencyRow, scoped)
            assert row is not None
            row.done, row.status_code, row.response = True, status, body
        return (status, body), False

    def _replay(self, scoped: str, request: str) -> Answer:
        deadline = time.monotonic() + self._wait_s
        while True:
            with self._shared.readers() as session:
                row = session.get(IdempotencyRow, scoped)
                if row is not None and row.request != request:
                    raise ConflictError("this Idempotency-Key was used for a different request")
                if row is not None and row.done:
                    return row.status_code, dict(row.response)
            if row is None or time.monotonic() >= deadline:
                raise ConflictError(
                    "a request with this Idempotency-Key is still in progress; retry later"
                )
            time.sleep(POLL_S)
