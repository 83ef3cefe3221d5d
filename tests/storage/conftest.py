"""Stores for the contract suite: every `store` test runs on SQLite and on the machine's PostgreSQL server.

SQLite gets a file of its own per test, so other connections can check what was committed. PostgreSQL gets a
schema of its own per test (`t_<random>`, first on the search path), dropped afterwards. Without a server the
PostgreSQL cases are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from bot.storage import SQLiteStore
from bot.storage.postgres import PostgresStore

SERVER = "postgresql://postgres@127.0.0.1:5432/test"
AnyStore = SQLiteStore | PostgresStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
async def sqlite_store(path: Path) -> AsyncIterator[SQLiteStore]:
    # Always closed: aiosqlite's worker thread would otherwise keep the test process alive.
    opened = await SQLiteStore.open(str(path))
    yield opened
    await opened.close()


@pytest.fixture
def database_url() -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a fresh schema of their own, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL server for the tests: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{SERVER}?options={quote(f'-c search_path={schema}')}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
async def postgres_store(database_url: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(database_url, pool_size=2)
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> AnyStore:
    return request.getfixturevalue(f"{request.param}_store")


async def query(store: AnyStore, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of `sql` (written with `?`) as the store's own connection reads them."""
    return [tuple(r) for r in await store._rows(sql, args)]  # both backends read `?` placeholders
