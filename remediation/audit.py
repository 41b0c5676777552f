"""The audit log: append-only and hash-chained, so that any later change shows.

Each entry's ``hash`` is the SHA-256 of its own content and of the previous entry's hash
(:func:`entry_hash`); the first entry follows :data:`GENESIS`. An entry is appended inside the
caller's transaction, so a state change and the entry that records it commit together or not
at all. Appends are serialised (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL)
so that concurrent writers never fork the chain. See docs/audit.md.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from revleak.remediation.db import AuditRow, read_only
from revleak.remediation.model import Frozen
from revleak.timefmt import datetime_to_ms, format_timestamp

GENESIS = "0" * 64

# The advisory lock every PostgreSQL append holds until its transaction ends.
APPEND_LOCK_KEY = 0x7265766C61756469  # "revlaudi"

# A verdict lists at most this many problems: a wholly rewritten log must not exhaust memory.
MAX_PROBLEMS = 1000

# How far back an edited entry looks for the entry it may have swapped content with.
_SWAP_WINDOW = 64
_CONTENT_FIELDS = ("at", "actor", "action", "incident_id", "payload")


class AuditEntry(Frozen):
    seq: int
    at: str  # ISO-8601 UTC with milliseconds, e.g. 2026-03-02T10:00:00.000Z
    actor: str
    action: str
    incident_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


ProblemKind = Literal["edited", "deleted", "reordered", "inserted", "reference"]


class AuditProblem(Frozen):
    seq: int
    kind: ProblemKind
    detail: str


class AuditVerdict(Frozen):
    ok: bool
    entries: int
    head_seq: int | None
    head_hash: str | None
    problems: tuple[AuditProblem, ...]


def canonical_json(value: Any) -> bytes:
    """The one byte form hashed and stored: sorted keys, no whitespace, UTF-8."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def entry_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    incident_id: str | None,
    payload: Any,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of the entry's fields other than ``hash``."""
    content = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "incident_id": incident_id,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(content)).hexdigest()


class AuditLog:
    """The audit log of one database. There is no way to change or remove an entry."""

    def __init__(self, engine: Engine) -> None:
        self._reader = read_only(engine)

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        incident_id: str | None,
        payload: Mapping[str, Any],
        at: datetime,
    ) -> AuditEntry:
        """Append an entry in ``session``'s transaction; it is durable when the caller
        commits. On SQLite the session must come from ``db.engine_for``'s engine (its
        transactions take the write lock first); a naive ``at`` is taken as UTC."""
        if session.get_bind().dialect.name == "postgresql":
            # Held until the caller's commit, so the next append sees this one as the tail.
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
        tail = session.execute(
            select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
        ).first()
        seq, prev_hash = (tail.seq + 1, tail.hash) if tail is not None else (1, GENESIS)
        stored_payload = canonical_json(dict(payload)).decode()
        # Hash what will be read back, so that verification recomputes the same bytes.
        payload_value = orjson.loads(stored_payload)
        stamp = format_timestamp(datetime_to_ms(at))
        digest = entry_hash(
            seq=seq,
            at=stamp,
            actor=actor,
            action=action,
            incident_id=incident_id,
            payload=payload_value,
            prev_hash=prev_hash,
        )
        # A Core insert: nothing lingers in the session that a later flush could update.
        session.execute(
            insert(AuditRow).values(
                seq=seq,
                at=stamp,
                actor=actor,
                action=action,
                incident_id=incident_id,
                payload=stored_payload,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        return AuditEntry(
            seq=seq,
            at=stamp,
            actor=actor,
            action=action,
            incident_id=incident_id,
            payload=payload_value,
            prev_hash=prev_hash,
            hash=digest,
        )

    def entries(
        self, *, after: int = 0, limit: int = 100, incident_id: str | None = None
    ) -> list[AuditEntry]:
        """Up to ``limit`` entries with ``seq > after``, oldest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = select(AuditRow).where(AuditRow.seq > after)
        if incident_id is not None:
            query = query.where(AuditRow.incident_id == incident_id)
        with Session(self._reader) as session:
            rows = session.scalars(query.order_by(AuditRow.seq).limit(limit)).all()
            return [_entry(row) for row in rows]

    def iter_all(self, *, batch: int = 1000) -> Iterator[AuditEntry]:
        """Every entry in ``seq`` order, read ``batch`` rows per short transaction."""
        after = 0
        while True:
            page = self.entries(after=after, limit=batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].seq

    def verify(self, references: Iterable[tuple[int, str]] = ()) -> AuditVerdict:
        """Walk the whole chain and report every place where it was changed.

        ``references`` are ``(seq, hash)`` pairs remembered elsewhere (each incident keeps
        its last entry's): a missing or different entry there is a ``reference`` problem,
        which is how a removed tail shows.
        """
        walk = _ChainWalk(self._lookup_seq, references)
        for row in self._raw_rows():
            walk.visit(row)
        return walk.verdict()

    def _raw_rows(self, batch: int = 1000) -> Iterator[_Row]:
        # The stored columns as they are: verification must not trust them to parse.
        after: int | None = None
        while True:
            query = select(
                AuditRow.seq,
                AuditRow.at,
                AuditRow.actor,
                AuditRow.action,
                AuditRow.incident_id,
                AuditRow.payload,
                AuditRow.prev_hash,
                AuditRow.hash,
            )
            if after is not None:
                query = query.where(AuditRow.seq > after)
            with self._reader.connect() as connection:
                page = [
                    _Row(*row)
                    for row in connection.execute(query.order_by(AuditRow.seq).limit(batch))
                ]
            yield from page
            if len(page) < batch:
                return
            after = page[-1].seq

    def _lookup_seq(self, digest: str) -> int | None:
        with self._reader.connect() as connection:
            # First by seq: on SQLite the unique index itself may have been dropped.
            return connection.execute(
                select(AuditRow.seq).where(AuditRow.hash == digest).order_by(AuditRow.seq).limit(1)
            ).scalar()


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        incident_id=row.incident_id,
        payload=orjson.loads(row.payload),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class _Row(NamedTuple):
    seq: int
    at: str
    actor: str
    action: str
    incident_id: str | None
    payload: str
    prev_hash: str
    hash: str

    def recomputed(self, **changes: Any) -> str | None:
        """The hash this row's content calls for (with ``changes``); None if the stored
        payload is not canonical JSON, which no append writes."""
        row = self._replace(**changes)
        try:
            payload = orjson.loads(row.payload)
        except (orjson.JSONDecodeError, TypeError):
            return None
        if canonical_json(payload).decode() != row.payload:
            return None
        return entry_hash(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            incident_id=row.incident_id,
            payload=payload,
            prev_hash=row.prev_hash,
        )


class _ChainWalk:
    """Checks rows one at a time in ``seq`` order, keeping only a bounded window."""

    def __init__(
        self, lookup_seq: Callable[[str], int | None], references: Iterable[tuple[int, str]]
    ) -> None:
        self._lookup_seq = lookup_seq
        self._references = sorted(set(references))
        self._next_reference = 0
        self._previous: _Row | None = None
        self._head: _Row | None = None
        self._entries = 0
        self._problems: list[AuditProblem] = []
        self._problem_count = 0
        self._last_reported: int | None = None
        # Edited rows that may turn out to have exchanged content with a later one.
        self._suspects: deque[tuple[_Row, int]] = deque(maxlen=_SWAP_WINDOW)

    def visit(self, row: _Row) -> None:
        self._entries += 1
        self._head = row
        self._check_references_up_to(row)
        previous = self._previous
        expected = previous.seq + 1 if previous is not None else 1
        if row.seq < expected:
            self._report(row.seq, "inserted", f"entry {row.seq} precedes the first entry (1)")
            return
        self._previous = row
        gap = row.seq > expected
        if gap:
            missing = (
                f"entry {expected} is" if row.seq == expected + 1 else
                f"entries {expected}-{row.seq - 1} are"
            )  # fmt: skip
            self._report(expected, "deleted", f"{missing} missing before entry {row.seq}")
        if row.recomputed() != row.hash:
            self._diagnose_edit(row)
        elif not gap and row.prev_hash != (previous.hash if previous else GENESIS):
            self._diagnose_link(row, previous)

    def verdict(self) -> AuditVerdict:
        for seq, digest in self._references[self._next_reference :]:
            self._report(seq, "reference", f"entry {seq} is referenced as {digest} but missing")
        self._next_reference = len(self._references)
        head = self._head
        return AuditVerdict(
            ok=self._problem_count == 0,
            entries=self._entries,
            head_seq=head.seq if head is not None else None,
            head_hash=head.hash if head is not None else None,
            problems=tuple(self._problems),
        )

    def _check_references_up_to(self, row: _Row) -> None:
        references = self._references
        while self._next_reference < len(references):
            seq, digest = references[self._next_reference]
            if seq > row.seq:
                return
            self._next_reference += 1
            if seq < row.seq:
                self._report(seq, "reference", f"entry {seq} is referenced as {digest} but missing")
            elif digest != row.hash:
                self._report(
                    seq, "reference", f"entry {seq} is referenced as {digest} but is {row.hash}"
                )

    def _diagnose_edit(self, row: _Row) -> None:
        if self._problem_count >= MAX_PROBLEMS:
            # Past the cap only the verdict matters: spare the diagnosis its lookups.
            self._report(row.seq, "edited", f"entry {row.seq} does not match its hash")
            return
        # An entry moved whole still hashes under the place it was written for.
        linked = 0 if row.prev_hash == GENESIS else self._lookup_seq(row.prev_hash)
        written = linked + 1 if linked is not None else row.seq
        if written != row.seq and row.recomputed(seq=written) == row.hash:
            self._report(row.seq, "reordered", f"entry {row.seq} is the entry written as {written}")
            return
        for position, (suspect, index) in enumerate(self._suspects):
            exchanged = _exchanged_fields(suspect, row)
            if exchanged is not None:
                detail = f"entries {suspect.seq} and {row.seq} exchanged their {exchanged}"
                self._problems[index] = AuditProblem(
                    seq=suspect.seq, kind="reordered", detail=detail
                )
                self._report(row.seq, "reordered", detail)
                del self._suspects[position]
                return
        listed = self._report(row.seq, "edited", f"entry {row.seq} does not match its hash")
        if listed is not None:
            self._suspects.append((row, listed))

    def _diagnose_link(self, row: _Row, previous: _Row | None) -> None:
        linked = self._lookup_seq(row.prev_hash)
        if previous is None:
            if linked is None:
                self._report(row.seq, "deleted", f"the entries before entry {row.seq} are missing")
            else:
                self._report(
                    row.seq, "reordered", f"entry {row.seq} was written after entry {linked}"
                )
        elif linked is None:
            self._report(
                previous.seq,
                "edited",
                f"entry {previous.seq} was rewritten: entry {row.seq} follows another hash",
            )
        elif linked == previous.seq - 1:
            self._report(
                previous.seq,
                "inserted",
                f"entry {previous.seq} was inserted: entry {row.seq} was written after {linked}",
            )
        else:
            self._report(row.seq, "reordered", f"entry {row.seq} was written after entry {linked}")

    def _report(self, seq: int, kind: ProblemKind, detail: str) -> int | None:
        """Record a problem; its index in the list, None when not listed."""
        # One diagnosis per entry: a rewritten entry also breaks its successor's link.
        if kind != "reference":
            if seq == self._last_reported:
                return None
            self._last_reported = seq
        self._problem_count += 1
        if len(self._problems) >= MAX_PROBLEMS:
            return None
        self._problems.append(AuditProblem(seq=seq, kind=kind, detail=detail))
        return len(self._problems) - 1


def _exchanged_fields(first: _Row, second: _Row) -> str | None:
    """Which content fields two edited rows would each verify with, if swapped back."""
    for fields in (*((name,) for name in _CONTENT_FIELDS), _CONTENT_FIELDS):
        back_first = {name: getattr(second, name) for name in fields}
        back_second = {name: getattr(first, name) for name in fields}
        if back_first == back_second:
            continue
        if (
            first.recomputed(**back_first) == first.hash
            and second.recomputed(**back_second) == second.hash
        ):
            return ", ".join(fields)
    return None
