"""The audit log on a SQLite file: appends, the hash chain, tampering done behind its back, and
``revleak audit``."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from auditkit import assert_concurrent_appends_never_fork_the_chain
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from revleak.cli import app as revleak_app
from revleak.remediation.audit import GENESIS, MAX_PROBLEMS, AuditLog, AuditProblem
from revleak.remediation.db import create_schema, engine_for

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    path = tmp_path / "revleak.db"
    engine = engine_for(f"sqlite:///{path}")
    create_schema(engine)
    yield path, engine
    engine.dispose()


def fill(engine: Engine, count: int, *, incident: str | None = "INC-1") -> AuditLog:
    log = AuditLog(engine)
    for number in range(1, count + 1):
        with Session(engine) as session, session.begin():
            log.append(
                session,
                actor=f"user-{number % 3}",
                action="incident.step",
                incident_id=incident if number % 2 else "INC-2",
                payload={"step": number, "note": f"step {number}", "amounts": [1.5, number]},
                at=START + timedelta(seconds=number),
            )
    return log


def tamper(path: Path, *statements: str) -> None:
    """Change the file directly, as someone with the file but not the application could."""
    connection = sqlite3.connect(path)
    with connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()


def problems(
    log: AuditLog, references: list[tuple[int, str]] | None = None
) -> list[tuple[int, str]]:
    verdict = log.verify(references or [])
    assert verdict.ok == (not verdict.problems)
    return [(problem.seq, problem.kind) for problem in verdict.problems]


def expected_hash(row: Mapping[str, Any]) -> str:
    content = {
        "seq": row["seq"],
        "at": row["at"],
        "actor": row["actor"],
        "action": row["action"],
        "incident_id": row["incident_id"],
        "payload": orjson.loads(row["payload"]),
        "prev_hash": row["prev_hash"],
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def test_appends_form_a_chain_that_an_independent_reader_can_check(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    log = fill(engine, 5)
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    rows = connection.execute("SELECT * FROM audit_log ORDER BY seq").fetchall()
    connection.close()
    assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5]
    previous = GENESIS
    for row in rows:
        assert row["prev_hash"] == previous
        assert row["hash"] == expected_hash(row)
        previous = row["hash"]
    assert rows[0]["at"] == "2026-03-02T10:00:01.000Z"
    assert rows[0]["payload"] == '{"amounts":[1.5,1],"note":"step 1","step":1}'
    verdict = log.verify([(5, rows[-1]["hash"])])
    assert verdict.ok
    assert (verdict.entries, verdict.head_seq, verdict.head_hash) == (5, 5, rows[-1]["hash"])
    assert verdict.problems == ()


def test_an_entry_commits_or_rolls_back_with_the_callers_transaction(
    database: tuple[Path, Engine],
) -> None:
    _path, engine = database
    log = AuditLog(engine)
    with Session(engine) as session:
        session.begin()
        entry = log.append(session, actor="ana", action="a", incident_id=None, payload={}, at=START)
        assert entry.seq == 1
        session.rollback()
    assert log.entries() == []
    with Session(engine) as session, session.begin():
        first = log.append(session, actor="ana", action="a", incident_id=None, payload={}, at=START)
        second = log.append(
            session, actor="ana", action="b", incident_id=None, payload={}, at=START
        )
    assert (first.seq, second.seq, second.prev_hash) == (1, 2, first.hash)
    assert log.entries() == [first, second]


def test_entries_pages_filters_and_streams_in_order(database: tuple[Path, Engine]) -> None:
    _path, engine = database
    log = fill(engine, 10)
    assert [entry.seq for entry in log.entries(after=3, limit=4)] == [4, 5, 6, 7]
    assert [entry.seq for entry in log.entries(incident_id="INC-2")] == [2, 4, 6, 8, 10]
    assert [entry.seq for entry in log.entries(after=4, incident_id="INC-2", limit=2)] == [6, 8]
    assert [entry.seq for entry in log.iter_all(batch=3)] == list(range(1, 11))
    assert log.entries(after=2, limit=1)[0].payload == {
        "amounts": [1.5, 3],
        "note": "step 3",
        "step": 3,
    }
    with pytest.raises(ValueError, match="limit"):
        log.entries(limit=0)


def test_an_edited_payload_is_named(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 6)
    tamper(
        path,
        """UPDATE audit_log SET payload = '{"step":3,"note":"nothing happened"}' WHERE seq = 3""",
    )
    assert problems(log) == [(3, "edited")]


def test_an_edited_entry_with_a_recomputed_hash_is_named_by_the_broken_link(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    log = fill(engine, 6)
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    row = dict(connection.execute("SELECT * FROM audit_log WHERE seq = 4").fetchone())
    connection.close()
    row["actor"] = "someone-else"
    tamper(
        path,
        f"UPDATE audit_log SET actor = 'someone-else', hash = '{expected_hash(row)}' WHERE seq = 4",
    )
    assert problems(log) == [(4, "edited")]


def test_a_deleted_middle_entry_is_named(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 6)
    tamper(path, "DELETE FROM audit_log WHERE seq = 3")
    assert problems(log) == [(3, "deleted")]
    tamper(path, "DELETE FROM audit_log WHERE seq IN (1, 5)")
    verdict = log.verify()
    assert [(p.seq, p.kind) for p in verdict.problems] == [
        (1, "deleted"),
        (3, "deleted"),
        (5, "deleted"),
    ]
    assert verdict.entries == 3


def test_swapped_payloads_are_named_as_reordered(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 6)
    tamper(
        path,
        "UPDATE audit_log SET payload = (SELECT payload FROM audit_log WHERE seq = 5)"
        " WHERE seq = 2",
        """UPDATE audit_log SET payload = '{"amounts":[1.5,2],"note":"step 2","step":2}'
           WHERE seq = 5""",
    )
    verdict = log.verify()
    assert [(p.seq, p.kind) for p in verdict.problems] == [(2, "reordered"), (5, "reordered")]
    assert "exchanged their payload" in verdict.problems[0].detail


def test_entries_moved_whole_are_named_as_reordered(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 6)
    columns = "at, actor, action, incident_id, payload, prev_hash, hash"
    tamper(
        path,
        f"CREATE TABLE moved AS SELECT seq, {columns} FROM audit_log WHERE seq IN (2, 4)",
        "UPDATE moved SET seq = 6 - seq",
        "DELETE FROM audit_log WHERE seq IN (2, 4)",
        f"INSERT INTO audit_log (seq, {columns}) SELECT seq, {columns} FROM moved",
    )
    found = problems(log)
    assert (2, "reordered") in found
    assert (4, "reordered") in found
    assert {kind for _seq, kind in found} == {"reordered"}


def test_a_deleted_tail_shows_only_against_a_reference(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 6)
    tail = log.entries(after=5)[0]
    tamper(path, "DELETE FROM audit_log WHERE seq = 6")
    # Without a witness, a shorter chain is a valid chain: see docs/audit.md.
    assert log.verify().ok
    verdict = log.verify([(2, log.entries(after=1)[0].hash), (tail.seq, tail.hash)])
    assert [(p.seq, p.kind) for p in verdict.problems] == [(6, "reference")]
    assert tail.hash in verdict.problems[0].detail


def test_a_reference_to_a_different_hash_is_named(database: tuple[Path, Engine]) -> None:
    _path, engine = database
    log = fill(engine, 3)
    assert problems(log, [(2, "f" * 64)]) == [(2, "reference")]


def test_inserted_entries_are_named(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 5)
    # Entry 3 and everything after it moved up by one, each rehashed for its new place, and a
    # forged entry 3 chained to entry 2.
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    rows = [dict(row) for row in connection.execute("SELECT * FROM audit_log ORDER BY seq")]
    connection.close()
    statements = ["DELETE FROM audit_log WHERE seq >= 3"]
    forged = {**rows[2], "actor": "mallory", "payload": '{"forged":true}'}
    shifted = [forged, *({**row, "seq": row["seq"] + 1} for row in rows[2:])]
    for row in shifted:
        row["hash"] = expected_hash(row)
        statements.append(
            "INSERT INTO audit_log VALUES ({seq}, '{at}', '{actor}', '{action}', '{incident_id}',"
            " '{payload}', '{prev_hash}', '{hash}')".format(**row)
        )
    tamper(path, *statements)
    assert (3, "inserted") in problems(log)

    tamper(
        path,
        "INSERT INTO audit_log VALUES (0, '2026-01-01T00:00:00.000Z', 'mallory', 'x', NULL, '{}',"
        f" '{GENESIS}', '{'e' * 64}')",
    )
    assert problems(log)[0] == (0, "inserted")


def test_a_payload_that_is_not_canonical_json_counts_as_edited(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    log = fill(engine, 3)
    tamper(
        path,
        """UPDATE audit_log SET payload = '{"amounts": [1.5, 2], "note": "step 2", "step": 2}'
           WHERE seq = 2""",
    )
    assert problems(log) == [(2, "edited")]
    tamper(path, "UPDATE audit_log SET payload = 'not json' WHERE seq = 2")
    assert problems(log) == [(2, "edited")]


def test_concurrent_appends_never_fork_the_chain(database: tuple[Path, Engine]) -> None:
    assert_concurrent_appends_never_fork_the_chain(database[1])


@pytest.mark.slow
def test_concurrent_appends_from_several_processes_never_fork_the_chain(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    script = f"""
import sys
from datetime import datetime, UTC
from sqlalchemy.orm import Session
from revleak.remediation.audit import AuditLog
from revleak.remediation.db import engine_for
engine = engine_for("sqlite:///{path}")
log = AuditLog(engine)
for step in range(40):
    with Session(engine) as session, session.begin():
        log.append(session, actor=sys.argv[1], action="step", incident_id=None,
                   payload={{"step": step}}, at=datetime.now(UTC))
"""
    processes = [
        subprocess.Popen([sys.executable, "-P", "-c", script, f"process-{number}"])
        for number in range(4)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0, 0]
    verdict = AuditLog(engine).verify()
    assert verdict.ok, verdict.problems
    assert (verdict.entries, verdict.head_seq) == (160, 160)


def test_readers_do_not_wait_for_an_open_write_transaction(
    database: tuple[Path, Engine],
) -> None:
    _path, engine = database
    log = fill(engine, 3)
    with Session(engine) as session, session.begin():
        log.append(session, actor="slow", action="step", incident_id=None, payload={}, at=START)
        started = time.monotonic()
        assert [entry.seq for entry in log.entries()] == [1, 2, 3]
        assert log.verify().ok
        assert time.monotonic() - started < 5
    assert log.verify().entries == 4


def test_write_transactions_take_the_lock_when_they_begin(database: tuple[Path, Engine]) -> None:
    _path, engine = database
    with engine.connect() as first:
        first.execute(text("SELECT 1"))
        other = sqlite3.connect(engine.url.database or "", timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
        first.rollback()


# --- any single change to a chain is found --------------------------------------------------

_FIELDS = ("at", "actor", "action", "incident_id", "payload", "prev_hash", "hash")


@st.composite
def tampering(draw: st.DrawFn) -> tuple[int, tuple[str, ...]]:
    size = draw(st.integers(min_value=2, max_value=12))
    kind = draw(st.sampled_from(["edit", "delete", "swap"]))
    first = draw(st.integers(min_value=1, max_value=size))
    if kind == "edit":
        return size, ("edit", str(first), draw(st.sampled_from(_FIELDS)))
    if kind == "delete":
        return size, ("delete", str(first))
    second = draw(st.integers(min_value=1, max_value=size).filter(lambda seq: seq != first))
    return size, ("swap", str(min(first, second)), str(max(first, second)))


_EDITS = {
    "at": "'2027-01-01T00:00:00.000Z'",
    "actor": "'mallory'",
    "action": "'approve'",
    "incident_id": "'INC-999'",
    "payload": """'{"step":0}'""",
    "prev_hash": f"'{'a' * 64}'",
    "hash": f"'{'b' * 64}'",
}


@given(tampering())
def test_any_single_edit_delete_or_swap_is_detected(change: tuple[int, tuple[str, ...]]) -> None:
    size, (kind, *arguments) = change
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.db"
        engine = engine_for(f"sqlite:///{path}")
        create_schema(engine)
        log = AuditLog(engine)
        with Session(engine) as session, session.begin():
            for step in range(1, size + 1):
                tail = log.append(
                    session,
                    actor="ana",
                    action="step",
                    incident_id=None,
                    payload={"step": step},
                    at=START,
                )
        seq = int(arguments[0])
        if kind == "edit":
            tamper(
                path,
                f"UPDATE audit_log SET {arguments[1]} = {_EDITS[arguments[1]]} WHERE seq = {seq}",
            )
            expected = [AuditProblem(seq=seq, kind="edited", detail="")]
            if arguments[1] == "hash" and seq == size:
                # The tail's new hash also differs from what the incident remembers.
                expected.insert(0, AuditProblem(seq=seq, kind="reference", detail=""))
        elif kind == "delete":
            tamper(path, f"DELETE FROM audit_log WHERE seq = {seq}")
            expected = [
                AuditProblem(seq=seq, kind="reference" if seq == size else "deleted", detail="")
            ]
        else:
            other = int(arguments[1])
            tamper(
                path,
                f"UPDATE audit_log SET payload = '{{}}' WHERE seq = {seq}",
                f"""UPDATE audit_log SET payload = '{{"step":{seq}}}' WHERE seq = {other}""",
                f"""UPDATE audit_log SET payload = '{{"step":{other}}}' WHERE seq = {seq}""",
            )
            expected = [
                AuditProblem(seq=seq, kind="reordered", detail=""),
                AuditProblem(seq=other, kind="reordered", detail=""),
            ]
        verdict = log.verify([(tail.seq, tail.hash)])
        engine.dispose()
    assert not verdict.ok
    assert [(p.seq, p.kind) for p in verdict.problems] == [(p.seq, p.kind) for p in expected]


def test_a_wholly_rewritten_log_lists_a_bounded_number_of_problems(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    log = AuditLog(engine)
    with Session(engine) as session, session.begin():
        for _ in range(MAX_PROBLEMS + 50):
            log.append(session, actor="ana", action="step", incident_id=None, payload={}, at=START)
    tamper(path, "UPDATE audit_log SET actor = 'mallory'")
    verdict = log.verify()
    assert not verdict.ok
    assert len(verdict.problems) == MAX_PROBLEMS
    assert verdict.entries == MAX_PROBLEMS + 50


# --- revleak audit ----------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(revleak_app, ["audit", *args], env=env)


def test_cli_verify_exits_0_when_intact_and_1_when_tampered(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 5)
    url = f"sqlite:///{path}"
    intact = cli("verify", "--db", url)
    assert intact.exit_code == 0, intact.output
    assert "entries: 5" in intact.output
    assert f"head: 5 {log.entries(after=4)[0].hash}" in intact.output
    assert "intact" in intact.output

    tamper(
        path,
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE audit_log SET actor = 'x' WHERE seq = 4",
    )
    tampered = cli("verify", env={"REVLEAK_DATABASE_URL": url})
    assert tampered.exit_code == 1, tampered.output
    assert "entries: 4" in tampered.output
    rows = [line.split() for line in tampered.output.splitlines() if "│" in line]
    assert [row[1:4] for row in rows if row[1:2] in (["2"], ["4"])] == [
        ["2", "│", "deleted"],
        ["4", "│", "edited"],
    ]
    assert "tampered" in tampered.output


def test_cli_refuses_a_database_that_is_not_there(tmp_path: Path) -> None:
    missing = cli("verify", "--db", f"sqlite:///{tmp_path / 'nope.db'}")
    assert missing.exit_code == 2
    assert not (tmp_path / "nope.db").exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert cli("export", "--db", f"sqlite:///{empty}").exit_code == 2


def test_cli_export_streams_json_lines(database: tuple[Path, Engine], tmp_path: Path) -> None:
    path, engine = database
    log = fill(engine, 7)
    url = f"sqlite:///{path}"
    printed = cli("export", "--db", url)
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout_bytes.splitlines()
    assert [orjson.loads(line) for line in lines] == [
        entry.model_dump() for entry in log.iter_all()
    ]
    out = tmp_path / "audit.jsonl"
    written = cli("export", "--db", url, "--out", str(out))
    assert written.exit_code == 0, written.output
    assert out.read_bytes().splitlines() == lines
    assert orjson.loads(lines[0])["hash"] == log.entries(limit=1)[0].hash


def test_the_recipe_in_the_docs_checks_the_chain(database: tuple[Path, Engine]) -> None:
    path, engine = database
    log = fill(engine, 4)
    guide = Path(__file__).parents[2] / "docs" / "audit.md"
    match = re.search(r"```python\n(.*?)```", guide.read_text(encoding="utf-8"), re.S)
    assert match, "no python block in docs/audit.md"
    recipe = path.parent / "recipe.py"
    recipe.write_text(match.group(1), encoding="utf-8")

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-P", str(recipe), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    intact = check()
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.strip() == f"4 entries, head {log.verify().head_hash}"
    tamper(path, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    broken = check()
    assert broken.returncode == 1
    assert "chain broken at entry 3" in broken.stderr
