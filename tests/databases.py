"""A throwaway PostgreSQL database for the tests that need one (the local server on
127.0.0.1:5432; they skip, saying why, when none answers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "postgresql+psycopg://root@127.0.0.1:5432/postgres",
)


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards; skips when no server answers."""
    errors = []
    for admin_url in ADMIN_URLS:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as error:
            errors.append(f"{admin_url}: {error.orig}")
            admin.dispose()
            continue
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        return
    pytest.skip("no PostgreSQL answers on 127.0.0.1:5432: " + "; ".join(errors))
