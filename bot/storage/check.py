"""Read-only looks at the database for `python -m bot doctor`: its schema's state and the stored channel personas.

`open_store` migrates on open, and a check must not change what it checks: this module opens its own connection,
read-only (SQLite's `query_only`, a PostgreSQL `READ ONLY` transaction), and never creates a database. Errors are
`StoreError`s whose message names where the database is (a path, or host:port/dbname), never a password.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from bot.storage.base import Persona, StoreError, StoreUnavailable
from bot.storage.migrations import MIGRATIONS, pending
from bot.storage.queries import persona

if TYPE_CHECKING:
    from bot.config import Settings

CONNECT_TIMEOUT = 5  # seconds: an answer a person waits for, not a start-up that rides out an outage
READ_TIMEOUT = 15.0  # the whole look, however the server stalls

# SQL written with `?`, as in bot.storage.queries; PostgreSQL's reader converts it.
Rows = Callable[[str, tuple[object, ...]], Awaitable[list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class SchemaStatus:
    where: str  # "SQLite at bot.db", "PostgreSQL at host:5432/db": never a password
    applied: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def fresh(self) -> bool:
        """Nothing is there yet (no file, or no migration applied): the bot creates the tables at its first start."""
        return not self.applied


async def schema_status(settings: Settings) -> SchemaStatus:
    """Which migrations the database has and which it still needs, without applying any.

    Raises `StoreUnavailable` when the database cannot be reached or read, `SchemaTooNew` when a newer bot
    migrated it, and `StoreError` when a fresh database could not be created by the bot.
    """
    everything = tuple(step.__name__ for step in MIGRATIONS)
    if settings.database_url is None and _sqlite_uri(settings.database_path) is None:
        _creatable(settings.database_path)
        return SchemaStatus(_sqlite_where(settings.database_path), (), everything)
    async with _read_only(settings) as (where, rows):
        done = await _applied(settings, rows)
        if not done and settings.database_url is not None:
            await _may_create_tables(where, rows)
    steps = pending(done)  # SchemaTooNew for a migration this version does not know
    return SchemaStatus(where, tuple(name for name in everything if name in done), tuple(s.__name__ for s in steps))


async def channel_personas(settings: Settings, team_id: str) -> list[tuple[str, Persona]]:
    """(channel id, persona) of every `/persona` choice stored for the workspace; call on a migrated database."""
    async with _read_only(settings) as (_, rows):
        found = await rows(
            "SELECT channel_id, system_prompt, params, persona FROM channel_personas WHERE team_id = ? "
            "ORDER BY channel_id",
            (team_id,),
        )
    return [(channel, persona(prompt, params, name)) for channel, prompt, params, name in found]


async def _applied(settings: Settings, rows: Rows) -> set[str]:
    if settings.database_url is None:
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    else:
        exists = "SELECT 1 WHERE to_regclass('migrations') IS NOT NULL"  # where the bot's unqualified names go
    if not await rows(exists, ()):
        return set()
    return {name for (name,) in await rows("SELECT name FROM migrations", ())}


async def _may_create_tables(where: str, rows: Rows) -> None:
    """A fresh PostgreSQL database passes only if the bot's user may create its tables there."""
    [(schema, allowed)] = await rows("SELECT current_schema(), has_schema_privilege(current_schema(), 'CREATE')", ())
    if schema is None:
        raise StoreError(f"{where}: no schema on the search path to create the bot's tables in")
    if not allowed:
        raise StoreError(f"{where}: the user may not create tables in schema {schema}")


def _sqlite_where(path: str) -> str:
    return f"SQLite at {path}"


def _sqlite_uri(path: str) -> str | None:
    """The file's URI for `_sqlite`, None if it is missing.

    `mode=rw` never creates the file. `mode=ro` would leave empty -wal and -shm files behind in WAL mode (a
    read-only connection cannot remove them), so `_sqlite` refuses writes with `PRAGMA query_only` instead.
    """
    file = Path(path)
    return file.resolve().as_uri() + "?mode=rw" if path != ":memory:" and file.exists() else None


def _creatable(path: str) -> None:
    """The bot creates a missing SQLite file and its folders at start: the nearest existing folder must be writable."""
    if path == ":memory:":
        return
    folder = Path(path).resolve().parent
    while not folder.exists():
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"{_sqlite_where(path)}: cannot be created, {folder} is not writable")


@asynccontextmanager
async def _read_only(settings: Settings) -> AsyncIterator[tuple[str, Rows]]:
    if settings.database_url is None:
        async with _sqlite(settings.database_path) as opened:
            yield opened
    else:
        async with _postgres(settings.database_url) as opened:
            yield opened


@asynccontextmanager
async def _sqlite(path: str) -> AsyncIterator[tuple[str, Rows]]:
    where = _sqlite_where(path)
    uri = _sqlite_uri(path)
    if uri is None:
        raise StoreUnavailable(f"{where}: no such file")
    try:
        db = await aiosqlite.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"{where}: cannot open it ({_reason(exc)})") from None
    try:
        await db.execute("PRAGMA query_only = ON")

        async def rows(sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in await db.execute_fetchall(sql, args)]

        async with asyncio.timeout(READ_TIMEOUT):
            yield where, rows
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"{where}: cannot read it ({_reason(exc)})") from None
    except TimeoutError:
        raise StoreUnavailable(f"{where}: no answer within {READ_TIMEOUT:.0f} s") from None
    finally:
        await db.close()


@asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[tuple[str, Rows]]:
    # Imported here, as in open_store: a deployment on SQLite never loads the PostgreSQL driver.
    import psycopg
    from psycopg import AsyncConnection

    from bot.storage.postgres import _where, pg

    where = f"PostgreSQL at {_where(url)}"
    password = _password(url)
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            conn = await AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT)
            try:
                await conn.set_read_only(True)  # every statement runs in one READ ONLY transaction

                async def rows(sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
                    cursor = await conn.execute(pg(sql), args)  # type: ignore[arg-type]  # SQL is code, never input
                    return list(await cursor.fetchall())

                yield where, rows
            finally:
                await conn.close()  # ends the read-only transaction: nothing to commit
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the database, {where} ({_reason(exc, password)})") from None
    except psycopg.Error as exc:
        raise StoreUnavailable(f"{where}: cannot read it ({_reason(exc, password)})") from None
    except TimeoutError:
        raise StoreUnavailable(f"cannot reach the database, {where} (no answer within {READ_TIMEOUT:.0f} s)") from None


def _password(url: str) -> str | None:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        value = conninfo_to_dict(url).get("password")
    except ProgrammingError:
        return None
    return str(value) if value else None


def _reason(exc: Exception, secret: str | None = None) -> str:
    """The error's type and first line, a password it might quote hidden."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    return text.replace(secret, "…") if secret else text
