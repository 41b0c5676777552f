"""The audit log on PostgreSQL: the append-only trigger, the advisory lock, tamper detection.

Each module gets a throwaway database on 127.0.0.1:5432 (trust authentication).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from auditkit import START, assert_concurrent_appends_never_fork_the_chain
from databases import throwaway_database
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from revleak.remediation.audit import AuditLog
from revleak.remediation.db import create_schema, engine_for

pytestmark = pytest.mark.services



@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with throwaway_database("revleak_audit") as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = engine_for(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS audit_log, postmortems CASCADE"))
    create_schema(engine)
    create_schema(engine)  # idempotent: the trigger and indexes are replaced, not doubled
    yield engine
    engine.dispose()


def fill(engine: Engine, count: int) -> AuditLog:
    log = AuditLog(engine)
    for number in range(1, count + 1):
        with Session(engine) as session, session.begin():
            log.append(
                session,
                actor="ana",
                action="incident.step",
                incident_id="INC-1",
                payload={"step": number},
                at=START + timedelta(seconds=number),
            )
    return log


def run(engine: Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def kinds(log: AuditLog, references: list[tuple[int, str]] | None = None) -> list[tuple[int, str]]:
    return [(problem.seq, problem.kind) for problem in log.verify(references or []).problems]


def test_appends_verify_and_read_back(engine: Engine) -> None:
    log = fill(engine, 5)
    verdict = log.verify()
    assert verdict.ok
    assert (verdict.entries, verdict.head_seq) == (5, 5)
    assert [entry.payload["step"] for entry in log.iter_all(batch=2)] == [1, 2, 3, 4, 5]
    assert log.entries(after=4)[0].at == "2026-03-02T10:00:05.000Z"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET payload = '{}' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "TRUNCATE audit_log",
    ],
)
def test_the_trigger_refuses_to_change_the_log(engine: Engine, statement: str) -> None:
    log = fill(engine, 3)
    with pytest.raises(DBAPIError, match="audit_log is append-only"):
        run(engine, statement)
    assert log.verify().ok
    assert log.verify().entries == 3


def test_tampering_with_the_trigger_disabled_is_detected(engine: Engine) -> None:
    log = fill(engine, 8)
    tail = log.entries(after=7)[0]
    run(
        engine,
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        """UPDATE audit_log SET payload = '{"step":99}' WHERE seq = 2""",
        "DELETE FROM audit_log WHERE seq = 4",
        "UPDATE audit_log SET payload = (SELECT payload FROM audit_log WHERE seq = 6)"
        " WHERE seq = 5",
        """UPDATE audit_log SET payload = '{"step":5}' WHERE seq = 6""",
        "DELETE FROM audit_log WHERE seq = 8",
    )
    assert kinds(log, [(tail.seq, tail.hash)]) == [
        (2, "edited"),
        (4, "deleted"),
        (5, "reordered"),
        (6, "reordered"),
        (8, "reference"),
    ]


def test_a_replaced_hash_is_detected(engine: Engine) -> None:
    log = fill(engine, 4)
    run(
        engine,
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        "UPDATE audit_log SET hash = md5(hash) || md5(hash) WHERE seq = 2",
    )
    assert kinds(log) == [(2, "edited")]


def test_concurrent_appends_never_fork_the_chain(engine: Engine) -> None:
    assert_concurrent_appends_never_fork_the_chain(engine)
