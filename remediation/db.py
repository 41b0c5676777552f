"""The remediation database: SQLite by default, PostgreSQL by URL (SQLAlchemy 2).

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: it takes the single write lock
at once, so a transaction that reads the audit chain's tail and then appends to it can never
interleave with another one doing the same (a deferred ``BEGIN`` would let both read, then
fail or fork when both try to write). Pure readers opt out with :func:`read_only`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, Engine, Integer, String, Text, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

READ_ONLY_OPTION = "revleak_read_only"

# Any constant distinct from the other advisory locks taken on the same database.
_SCHEMA_LOCK_KEY = 0x7265766C65616B00  # "revleak\0"


class Base(DeclarativeBase):
    pass


class AuditRow(Base):
    """One entry of the hash-chained audit log (see ``revleak.remediation.audit``)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    incident_id: Mapped[str | None] = mapped_column(String(200), index=True)
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class PostmortemRow(Base):
    """A post-mortem, one per incident (see ``revleak.remediation.postmortem_store``)."""

    __tablename__ = "postmortems"

    # The integer key is what SQLite's full-text index refers to.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(Text)
    slo: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(String(24), index=True)
    markdown: Mapped[str] = mapped_column(Text)


# The text PostgreSQL searches: the GIN index and every query must use this exact expression.
POSTMORTEM_TSVECTOR = (
    "setweight(to_tsvector('english', title), 'A')"
    " || setweight(to_tsvector('english', markdown), 'B')"
)

_POSTGRESQL_DDL = (
    """
    CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only';
    END
    $$
    """,
    "DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log",
    """
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """,
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """,
    "CREATE INDEX IF NOT EXISTS postmortems_search ON postmortems"
    f" USING GIN (({POSTMORTEM_TSVECTOR}))",
)

_SQLITE_DDL = (
    # An external-content index: the text lives once, in ``postmortems``.
    """
    CREATE VIRTUAL TABLE IF NOT EXISTS postmortems_fts USING fts5(
        title, markdown, content='postmortems', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )
    """,
    # Post-mortems are only ever inserted, so an insert trigger keeps the index complete.
    """
    CREATE TRIGGER IF NOT EXISTS postmortems_fts_insert AFTER INSERT ON postmortems BEGIN
        INSERT INTO postmortems_fts(rowid, title, markdown)
        VALUES (new.id, new.title, new.markdown);
    END
    """,
)


def engine_for(url: str, **options: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and ``BEGIN IMMEDIATE``
    so that several threads (and processes) can share one file."""
    if url.startswith("sqlite"):
        options.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **options)


def read_only(engine: Engine) -> Engine:
    """The same engine (same pool) for transactions that only read: on SQLite they start
    with a deferred ``BEGIN`` and so never wait for, or hold up, a writer."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def create_schema(engine: Engine) -> None:
    """Create every table, index and trigger (idempotent; safe from concurrent replicas)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        Base.metadata.create_all(connection)
        ddl = {"postgresql": _POSTGRESQL_DDL, "sqlite": _SQLITE_DDL}.get(connection.dialect.name)
        for statement in ddl or ():
            connection.exec_driver_sql(statement)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not open transactions itself: ``_sqlite_begin`` does, its own way.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    deferred = connection.get_execution_options().get(READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")
