"""The SQLite backend (`aiosqlite`, WAL mode).

Two connections serve the process. aiosqlite's runs every read and transaction in its worker thread, so a
slow disk or another process's lock never holds up the event loop. A statement on its own (an answer's
progress, mostly) runs on the event loop's thread, on the second connection, when it can do so without
waiting (see `SQLiteStore._write`). Every write runs as one transaction under an asyncio lock, because
statements from different coroutines would otherwise interleave inside each other's transactions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import aiosqlite

from bot.storage.admin import T, Tx
from bot.storage.base import (
    LEASE_SECONDS,
    UNFINISHED,
    NewMessage,
    Persona,
    Status,
    StoredMessage,
    StoreError,
    ThreadKey,
    Turn,
)
from bot.storage.migrations import migrate
from bot.storage.queries import (
    CONVERSATION_QUERY,
    INSERT_ANSWER,
    INSERT_CONTEXT,
    INSERT_CONVERSATION,
    INSERT_QUESTION,
    RESTART_QUERY,
    answer_row,
    context_row,
    conversation,
    conversation_row,
    question_row,
)
from bot.storage.sql_store import SQLStore

CACHE_KIB = 512  # SQLite's page cache for aiosqlite's connection
INLINE_CACHE_KIB = 128  # and for the one that writes single statements inline (a few pages each)


async def _to_the_end(work: Awaitable[T]) -> T:
    """Await `work` until it is done even if the caller is cancelled meanwhile; then re-raise the cancellation."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                raise
            cancelled = True
    error = task.exception()  # retrieved either way, so asyncio never reports it as lost
    if cancelled:
        raise asyncio.CancelledError
    if error is not None:
        raise error
    return task.result()


def _pragmas(*, busy_timeout_ms: int, cache_kib: int) -> list[str]:
    """A connection's settings; the two connections differ only in what the arguments say."""
    return [
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={busy_timeout_ms}",
        # With WAL, NORMAL survives process crashes and skips an fsync per commit (answers save often).
        "PRAGMA synchronous=NORMAL",
        # SQLite's page cache (2 MB by default) fills as the database grows, and the process's memory with it. An
        # answer reads and writes a few dozen pages; the rest come from the system's file cache at a read each.
        f"PRAGMA cache_size=-{cache_kib}",
    ]


async def _prepare(db: aiosqlite.Connection) -> None:
    await db.execute("PRAGMA journal_mode=WAL")  # the file's own setting: the inline connection finds it there
    for pragma in _pragmas(busy_timeout_ms=5000, cache_kib=CACHE_KIB):
        await db.execute(pragma)
    await migrate(db)


def _inline_connection(path: str) -> sqlite3.Connection:
    """The connection for single statements run on the event loop's thread: it never waits for a lock (a busy
    database is the worker thread's to wait for) and never checkpoints the WAL (aiosqlite's connection does, in
    its thread, at its commits)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in [*_pragmas(busy_timeout_ms=0, cache_kib=INLINE_CACHE_KIB), "PRAGMA wal_autocheckpoint=0"]:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


def _busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY, whichever its extended code: another connection holds the lock this statement needs."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def _unusable(path: str, problem: BaseException) -> StoreError:
    reason = " ".join(str(problem).split()) or type(problem).__name__
    return StoreError(f"DATABASE_URL: cannot use the SQLite database at {path} ({reason})")


class _SQLiteTx:
    """`Tx` on the connection, inside a transaction `SQLiteStore._transaction` holds."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def rows(self, sql: str, args: Sequence[object] = ()) -> list[aiosqlite.Row]:
        return list(await self._db.execute_fetchall(sql, tuple(args)))

    async def write(self, sql: str, args: Sequence[object] = ()) -> int:
        cursor = await self._db.execute(sql, tuple(args))
        return cursor.rowcount


class SQLiteStore(SQLStore):
    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        inline: sqlite3.Connection | None = None,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        super().__init__(owner=owner, lease_seconds=lease_seconds)
        self._db = db
        self._inline = inline  # None for ":memory:", where a second connection would be another database
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, *, owner: str | None = None, lease_seconds: float = LEASE_SECONDS) -> SQLiteStore:
        """The store on the file at `path`, set up and migrated; `StoreError` (one line) when SQLite cannot use it."""
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(path, exc) from None
        try:
            await _prepare(db)
            inline = _inline_connection(path) if path != ":memory:" else None
        except BaseException as exc:
            # aiosqlite's worker thread is no daemon: a connection left open would keep the process from exiting.
            with suppress(sqlite3.Error):
                await db.close()
            if isinstance(exc, sqlite3.Error):
                raise _unusable(path, exc) from None
            raise
        return cls(db, inline=inline, owner=owner, lease_seconds=lease_seconds)

    async def close(self) -> None:
        try:
            if self._inline is not None:
                self._inline.close()
        finally:
            await self._db.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, closed whatever happens, even to a task cancelled halfway through.

        aiosqlite runs each statement in its worker thread, and a cancelled `await` does not take a statement
        back: a BEGIN, UPDATE or COMMIT whose caller was cancelled still runs. So BEGIN sits inside the `try`,
        and on any error or cancellation a ROLLBACK is queued behind whatever is still pending (a no-op if the
        COMMIT went through) and awaited to its end, with the lock held, before the error goes on.
        """
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await self._db.commit()
            except BaseException:
                await _to_the_end(self._db.rollback())
                raise

    async def _write(self, sql: str, args: Iterable[object]) -> int:
        """One statement on its own: atomic without BEGIN and COMMIT.

        It runs on the event loop's thread, on the inline connection: a small keyed write takes tens of
        microseconds there, where a trip to aiosqlite's thread costs two thread handoffs and, with the loop
        busy, a few more for the GIL (an answer saves its progress before every Slack update: about half of
        the bot's context switches). If another connection holds the database's write lock (another process,
        say), the inline try fails at once and the statement goes to aiosqlite's thread, which waits for the
        lock up to its busy timeout; the loop never waits.

        It waits for the write lock, so it never lands inside another coroutine's transaction. A caller
        cancelled meanwhile leaves nothing open: the statement commits or fails by itself.
        """
        args = tuple(args)
        async with self._write_lock:
            if self._inline is not None:
                try:
                    return self._inline.execute(sql, args).rowcount
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
            cursor = await self._db.execute(sql, args)
            return cursor.rowcount

    async def _write_returning(self, sql: str, args: Iterable[object]) -> list[aiosqlite.Row]:
        async with self._write_lock:
            return list(await self._db.execute_fetchall(sql, tuple(args)))

    async def _rows(self, sql: str, args: Iterable[object] = ()) -> list[aiosqlite.Row]:
        # One trip to SQLite's thread (a cursor's execute, fetch and close would be three).
        return list(await self._db.execute_fetchall(sql, tuple(args)))

    async def _atomically(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._transaction() as db:
            return await work(_SQLiteTx(db))

    async def _in_one_trip(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` as one transaction in SQLite's thread, statements and all: one trip to that thread, where
        a transaction awaited statement by statement takes one per statement, BEGIN and COMMIT included. A trip
        (two thread handoffs) costs far more CPU than a small statement.

        aiosqlite's public API sends one statement a trip; `Connection._execute` is the primitive under it,
        which queues any function for its thread (the same in every aiosqlite version this project allows).
        The write lock keeps the transaction from starting inside another coroutine's. Once queued, the work
        commits or rolls back whatever happens to the caller; a caller cancelled meanwhile waits for that end,
        so what it leaves is settled when the cancellation goes on.
        """

        def transaction() -> T:
            conn = self._db._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            return result

        async with self._write_lock:
            return await _to_the_end(self._db._execute(transaction))

    # conversations -----------------------------------------------------------------------------

    async def claim_turn(self, key: ThreadKey, persona: Persona, message: NewMessage) -> Turn | None:
        now = time.time()
        lease_until = now + self.lease_seconds

        def claim(db: sqlite3.Connection) -> Turn | None:
            created = db.execute(INSERT_CONVERSATION, conversation_row(key, persona, now)).rowcount == 1
            conv_id, prompt, name, params = db.execute(
                CONVERSATION_QUERY, (key.team_id, key.channel_id, key.thread_ts)
            ).fetchone()
            cursor = db.execute(INSERT_QUESTION, question_row(conv_id, message, now))
            if cursor.rowcount == 0:
                return None  # already claimed: the transaction commits nothing new
            user_id = cursor.lastrowid
            cursor = db.execute(INSERT_ANSWER, answer_row(conv_id, user_id, self.owner, lease_until, now))
            assert user_id is not None and cursor.lastrowid is not None
            return Turn(
                conversation=conversation(conv_id, key, prompt, name, params),
                user_message_id=user_id,
                answer_id=cursor.lastrowid,
                user_ts=message.slack_ts,
                created_conversation=created,
            )

        return await self._in_one_trip(claim)

    async def add_context(self, conversation_id: int, messages: list[NewMessage]) -> int:
        now = time.time()
        added = 0
        async with self._transaction() as db:
            for m in messages:
                cursor = await db.execute(INSERT_CONTEXT, context_row(conversation_id, m, now))
                added += cursor.rowcount
        return added

    async def record_tokens(self, counts: Iterable[tuple[StoredMessage, int]]) -> None:
        rows = [(tokens, m.id, m.text) for m, tokens in counts]
        if not rows:
            return
        async with self._transaction() as db:
            # Compared with the text that was counted: an edit in the meantime wins.
            await db.executemany("UPDATE messages SET tokens = ? WHERE id = ? AND text = ?", rows)

    # leases ---------------------------------------------------------------------------------------------------

    async def _take_lapsed(self, limit: int) -> list[int]:
        # SQLite serves one process: an answer left unfinished by any other holder was left by a process that
        # died (or stopped), whatever its lease says.
        now = time.time()
        rows = await self._write_returning(
            "UPDATE messages SET lease_owner = ?, lease_until = ? WHERE id IN ("
            f"SELECT id FROM messages WHERE role = 'assistant' AND status IN ({','.join('?' * len(UNFINISHED))}) "
            "AND (lease_owner IS NULL OR lease_owner <> ? OR lease_until < ?) ORDER BY id LIMIT ?) RETURNING id",
            (self.owner, now + self.lease_seconds, *UNFINISHED, self.owner, now, limit),
        )
        return [r[0] for r in rows]

    # re-running an answer --------------------------------------------------------------------------------------

    async def restart_answer(self, answer_id: int) -> Turn | None:
        async with self._transaction() as db:
            now = time.time()
            cursor = await db.execute(
                RESTART_QUERY,
                (Status.PENDING, now, self.owner, now + self.lease_seconds, answer_id, *UNFINISHED),
            )
            if cursor.rowcount == 0:
                return None
            await db.execute("DELETE FROM feedback WHERE answer_id = ?", (answer_id,))
            ref = await self.answer_ref(answer_id)  # read inside the transaction: sees the row just reset
            assert ref is not None
            return Turn(
                conversation=ref.conversation,
                user_message_id=ref.user_message_id,
                answer_id=answer_id,
                user_ts=ref.user_ts,
                created_conversation=False,
            )
