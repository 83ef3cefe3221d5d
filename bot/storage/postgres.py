"""The PostgreSQL backend, for several replicas of the bot on one database.

Driver: psycopg 3 with `psycopg_pool`. One API for sync and async code, it works behind PgBouncer, and the
pool reports statistics (`pool.get_stats()`). asyncpg was the other candidate: its pool runs
`pg_advisory_unlock_all()` and `UNLISTEN *` whenever a connection goes back, so session-level advisory locks
and LISTEN would each need a connection of their own outside the pool.

Every operation takes a connection from the pool and runs as one transaction: a single statement in
autocommit (one round trip), several statements inside `conn.transaction()`. A cancelled operation leaves
nothing open: psycopg cancels the statement in the server and rolls the transaction back, and the connection
always goes back to the pool (which rolls back or replaces a connection left in a bad state).

The SQL is SQLite's where the two agree (`bot.storage.queries`, placeholders turned into `%s`); what differs
is here: ids come back through RETURNING, and migrations run under an advisory lock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bot.storage.admin import T, Tx
from bot.storage.base import (
    LEASE_SECONDS,
    UNFINISHED,
    AnswerRef,
    Conversation,
    NewMessage,
    Persona,
    Status,
    StoredMessage,
    StoreUnavailable,
    ThreadKey,
    Turn,
)
from bot.storage.migrations import POSTGRESQL, Dialect, pending
from bot.storage.queries import (
    ANSWER_REF_QUERY,
    CONVERSATION_QUERY,
    INSERT_ANSWER,
    INSERT_CONTEXT,
    INSERT_CONVERSATION,
    INSERT_QUESTION,
    LAPSED,
    RESTART_QUERY,
    answer_ref,
    answer_row,
    context_row,
    conversation_row,
    question_row,
)
from bot.storage.queries import conversation as _conversation
from bot.storage.sql_store import SQLStore

# Held (transaction-scoped) while migrating, so replicas that start together migrate once. Any constant
# will do as long as nothing else in the database uses it: these are the bytes of "mistral\0".
MIGRATION_LOCK = 0x6D69737472616C00

# How long start-up waits for the server before it gives up with one line.
CONNECT_TIMEOUT = 10
# How long an operation waits for a pooled connection: a few seconds of outage are ridden out, no more.
POOL_TIMEOUT = 5.0


def pg(sql: str) -> str:
    """SQLite's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


# Shared queries that this module's transactions run on their own connection (not through `_rows`).
_CONVERSATION = pg(CONVERSATION_QUERY)
_ANSWER_REF = pg(ANSWER_REF_QUERY)
_RESTART = pg(RESTART_QUERY)
# The claim's inserts, each giving back the id it made (none on a conflict: claimed before).
_INSERT_CONVERSATION = pg(INSERT_CONVERSATION) + " RETURNING id"
_INSERT_QUESTION = pg(INSERT_QUESTION) + " RETURNING id"
_INSERT_ANSWER = pg(INSERT_ANSWER) + " RETURNING id"
_INSERT_CONTEXT = pg(INSERT_CONTEXT)
# FOR UPDATE SKIP LOCKED: replicas sweeping at once each take different answers, and none waits for another.
# Written with `?`, like the shared queries: `_rows` converts it.
_TAKE_LAPSED = (
    "UPDATE messages SET lease_owner = ?, lease_until = ? WHERE id IN ("
    f"SELECT id FROM messages WHERE {LAPSED} ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING id"
)


def _out_of_reach(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"the database is out of reach ({' '.join(str(exc).split())[:200]})")


class _PostgresMigrator:
    dialect: Dialect = POSTGRESQL

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn

    async def execute(self, sql: str) -> None:
        await self._conn.execute(sql)  # type: ignore[arg-type]  # migration text is code, never input


async def migrate(conn: AsyncConnection[Any]) -> list[str]:
    """Apply every migration not yet recorded, all in one transaction under an advisory lock.

    A second replica starting at the same moment waits on the lock, then finds everything applied. A
    database that records a migration this code does not know raises `SchemaTooNew`, and nothing changes.
    """
    applied = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        cursor = await conn.execute("SELECT name FROM migrations")
        done = {row[0] for row in await cursor.fetchall()}
        migrator = _PostgresMigrator(conn)
        for step in pending(done):
            await step(migrator)
            await conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (%s, extract(epoch FROM now()))", (step.__name__,)
            )
            applied.append(step.__name__)
    return applied


def _where(conninfo: str) -> str:
    """host:port/dbname of a connection string, for messages: never the user's password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the server in DATABASE_URL"
    host = str(parts.get("host") or "localhost")
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or ''}"


def _unavailable(conninfo: str, problem: object) -> StoreUnavailable:
    reason = " ".join(str(problem).split()) or type(problem).__name__  # one line, whatever libpq said
    return StoreUnavailable(f"DATABASE_URL: cannot use the PostgreSQL database at {_where(conninfo)} ({reason})")


class _PostgresTx:
    """`Tx` on a connection inside `conn.transaction()`: SQLite's `?` placeholders turned into `%s`."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn

    async def rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return await _fetch(self._conn, pg(sql), args)

    async def write(self, sql: str, args: Sequence[object] = ()) -> int:
        cursor = await self._conn.execute(pg(sql), args)  # type: ignore[arg-type]  # SQL of the store, never input
        return cursor.rowcount


class PostgresStore(SQLStore):
    shared = True
    _lock_rows = " FOR UPDATE"
    _bytes_order = ' COLLATE "C"'  # the database's collation may follow a locale's rules

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        *,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        super().__init__(owner=owner, lease_seconds=lease_seconds)
        self._pool = pool

    @classmethod
    async def open(
        cls, conninfo: str, *, pool_size: int = 4, owner: str | None = None, lease_seconds: float = LEASE_SECONDS
    ) -> PostgresStore:
        """Migrate, then open a pool of `pool_size` connections; `StoreUnavailable` if the server cannot be used."""
        try:
            async with await AsyncConnection.connect(
                conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            ) as conn:
                await migrate(conn)
        except psycopg.OperationalError as exc:
            raise _unavailable(conninfo, exc) from None
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            conninfo,
            min_size=pool_size,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="bot",
            timeout=POOL_TIMEOUT,
            # The pool's reconnection backs off exponentially (1 s, 2 s, 4 s...): after a long outage it would
            # come back minutes late. Giving up after a few seconds instead lets the next request try at once.
            reconnect_timeout=POOL_TIMEOUT,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except PoolTimeout as exc:
            await pool.close()
            raise _unavailable(conninfo, exc) from None
        return cls(pool, owner=owner, lease_seconds=lease_seconds)

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        """The connection pool, for what shares the database beside the store (the Slack budget)."""
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    # Connections are not checked as they leave the pool (a round trip each time). A server restart breaks every
    # idle one at once instead: the first operation to find a broken connection has the pool drop them all
    # (`pool.check()`), and a single statement is then sent again on a fresh one. Retrying it is safe: it never
    # ran (the connection was dead before it was sent), or it is one of the store's idempotent statements.

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        """One transaction on a pooled connection: committed at the end, rolled back on any error or cancellation.

        Not sent again after a lost connection (its body is the caller's): `StoreUnavailable`, which callers
        that must succeed (claiming a message) retry.
        """
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except PoolTimeout as exc:
            raise _out_of_reach(exc) from exc
        except psycopg.OperationalError as exc:
            await self._drop_broken()
            raise _out_of_reach(exc) from exc

    async def _once(self, sql: str, args: Iterable[object], fetch: bool) -> Any:
        """One statement in autocommit, sent again once on a fresh connection if the first one was broken."""

        async def statement(conn: AsyncConnection[Any]) -> Any:
            cursor = await conn.execute(pg(sql), tuple(args))  # type: ignore[arg-type]
            return await cursor.fetchall() if fetch else cursor.rowcount

        return await self._on_a_connection(statement)

    async def _atomically(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """`work` as one transaction, run again once on a fresh connection if the first one was broken."""

        async def transaction(conn: AsyncConnection[Any]) -> T:
            async with conn.transaction():
                return await work(_PostgresTx(conn))

        return await self._on_a_connection(transaction)

    async def _on_a_connection(self, use: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """`use` a pooled connection; once more on a fresh one if that one was broken (a server restart leaves
        every pooled connection broken, and the first use finds out). Out of reach → `StoreUnavailable`."""
        for attempt in (1, 2):
            conn: AsyncConnection[Any] | None = None
            try:
                async with self._pool.connection() as conn:
                    return await use(conn)
            except PoolTimeout as exc:
                raise _out_of_reach(exc) from exc
            except psycopg.OperationalError as exc:
                await self._drop_broken()
                if attempt == 2 or conn is None or not conn.broken:
                    raise _out_of_reach(exc) from exc
        raise AssertionError("unreachable")

    async def _drop_broken(self) -> None:
        try:
            await self._pool.check()
        except psycopg.Error:
            pass  # the pool replaces what it cannot check

    async def _write(self, sql: str, args: Iterable[object]) -> int:
        """One statement (`?` placeholders) on its own: autocommit, one round trip; the rows it changed."""
        return int(await self._once(sql, args, fetch=False))

    async def _rows(self, sql: str, args: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query written with `?` placeholders."""
        return list(await self._once(sql, args, fetch=True))

    async def _write_returning(self, sql: str, args: Iterable[object]) -> list[tuple[Any, ...]]:
        return await self._rows(sql, args)  # autocommit: a statement is a transaction of its own

    # conversations -----------------------------------------------------------------------------

    async def claim_turn(self, key: ThreadKey, persona: Persona, message: NewMessage) -> Turn | None:
        # On a conflict PostgreSQL waits for the other transaction: of two replicas that claim one message
        # at once, the second finds the first's rows once it committed, and claims nothing.
        now = time.time()
        async with self._transaction() as conn:
            created = await _fetch(conn, _INSERT_CONVERSATION, conversation_row(key, persona, now))
            conversation = await _get_conversation(conn, key)
            assert conversation is not None
            user = await _fetch(conn, _INSERT_QUESTION, question_row(conversation.id, message, now))
            if not user:
                return None  # already claimed: the transaction commits nothing new
            answer = await _fetch(
                conn,
                _INSERT_ANSWER,
                answer_row(conversation.id, user[0][0], self.owner, now + self.lease_seconds, now),
            )
            return Turn(
                conversation=conversation,
                user_message_id=user[0][0],
                answer_id=answer[0][0],
                user_ts=message.slack_ts,
                created_conversation=bool(created),
            )

    async def add_context(self, conversation_id: int, messages: list[NewMessage]) -> int:
        now = time.time()
        added = 0
        async with self._transaction() as conn:
            for m in messages:
                cursor = await conn.execute(_INSERT_CONTEXT, context_row(conversation_id, m, now))  # type: ignore[arg-type]
                added += cursor.rowcount
        return added

    async def record_tokens(self, counts: Iterable[tuple[StoredMessage, int]]) -> None:
        rows = [(tokens, m.id, m.text) for m, tokens in counts]
        if not rows:
            return
        async with self._transaction() as conn, conn.cursor() as cursor:
            # Compared with the text that was counted: an edit in the meantime wins.
            await cursor.executemany("UPDATE messages SET tokens = %s WHERE id = %s AND text = %s", rows)

    # leases ---------------------------------------------------------------------------------------------------

    async def _take_lapsed(self, limit: int) -> list[int]:
        now = time.time()
        rows = await self._write_returning(
            _TAKE_LAPSED, (self.owner, now + self.lease_seconds, *UNFINISHED, now, limit)
        )
        return [r[0] for r in rows]

    # re-running an answer --------------------------------------------------------------------------------------

    async def restart_answer(self, answer_id: int) -> Turn | None:
        # Of two clicks at once, the second UPDATE waits for the first's row lock, then re-checks the row:
        # now pending, it matches no more.
        async with self._transaction() as conn:
            now = time.time()
            cursor = await conn.execute(
                _RESTART, (Status.PENDING, now, self.owner, now + self.lease_seconds, answer_id, *UNFINISHED)
            )
            if cursor.rowcount == 0:
                return None
            await conn.execute("DELETE FROM feedback WHERE answer_id = %s", (answer_id,))
            ref = await _answer_ref(conn, answer_id)  # read inside the transaction: sees the row just reset
            assert ref is not None
            return Turn(
                conversation=ref.conversation,
                user_message_id=ref.user_message_id,
                answer_id=answer_id,
                user_ts=ref.user_ts,
                created_conversation=False,
            )


async def _fetch(conn: AsyncConnection[Any], sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(sql, args)  # type: ignore[arg-type]  # SQL of this module, never input
    return await cursor.fetchall()


async def _get_conversation(conn: AsyncConnection[Any], key: ThreadKey) -> Conversation | None:
    rows = await _fetch(conn, _CONVERSATION, (key.team_id, key.channel_id, key.thread_ts))
    if not rows:
        return None
    conv_id, prompt, name, params = rows[0]
    return _conversation(conv_id, key, prompt, name, params)


async def _answer_ref(conn: AsyncConnection[Any], answer_id: int) -> AnswerRef | None:
    rows = await _fetch(conn, _ANSWER_REF, (answer_id,))
    return answer_ref(rows[0]) if rows else None


__all__ = ["MIGRATION_LOCK", "PostgresStore", "migrate", "pg"]
