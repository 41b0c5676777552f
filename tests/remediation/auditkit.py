"""Many writers appending to one audit log at once (SQLite and PostgreSQL tests)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from revleak.remediation.audit import AuditLog

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def assert_concurrent_appends_never_fork_the_chain(
    engine: Engine, *, writers: int = 8, steps: int = 50
) -> None:
    """``writers`` threads append ``steps`` entries each through their own sessions."""
    log = AuditLog(engine)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for step in range(steps):
                with Session(engine) as session, session.begin():
                    log.append(
                        session,
                        actor=f"writer-{number}",
                        action="step",
                        incident_id=None,
                        payload={"step": step},
                        at=START,
                    )
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    verdict = log.verify()
    assert verdict.ok, verdict.problems
    assert [entry.seq for entry in log.iter_all()] == list(range(1, writers * steps + 1))
    per_writer = {f"writer-{number}": 0 for number in range(writers)}
    for entry in log.iter_all():
        per_writer[entry.actor] += 1
    assert set(per_writer.values()) == {steps}
