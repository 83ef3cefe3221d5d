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

import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bot.storage.base import (
    FEEDBACK_VALUES,
    UNFINISHED,
    AnswerRef,
    ChannelUse,
    Conversation,
    ConversationSummary,
    FeedbackCount,
    NewMessage,
    Persona,
    Status,
    StoredMessage,
    StoreUnavailable,
    ThreadKey,
    Turn,
    UnfinishedAnswer,
    Usage,
)
from bot.storage.migrations import MIGRATIONS, POSTGRESQL, Dialect, pending
from bot.storage.queries import (
    ANSWER_REF_QUERY,
    CHANNELS_IN_USE_QUERY,
    FEEDBACK_COUNTS_QUERY,
    HISTORY_QUERY,
    IN_HISTORY,
    RECENT_CONVERSATIONS_QUERY,
    RESTART_QUERY,
    UNFINISHED_QUERY,
    answer_ref,
    stored_message,
)
from bot.storage.queries import conversation as _conversation
from bot.storage.queries import persona as _persona

# Held (transaction-scoped) while migrating, so replicas that start together migrate once. Any constant
# will do as long as nothing else in the database uses it: these are the bytes of "mistral\0".
MIGRATION_LOCK = 0x6D69737472616C00

# How long start-up waits for the server before it gives up with one line.
CONNECT_TIMEOUT = 10


def pg(sql: str) -> str:
    """SQLite's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


_HISTORY = pg(HISTORY_QUERY)
_ANSWER_REF = pg(ANSWER_REF_QUERY)
_RESTART = pg(RESTART_QUERY)
_UNFINISHED = pg(UNFINISHED_QUERY)
_FEEDBACK_COUNTS = pg(FEEDBACK_COUNTS_QUERY)
_RECENT_CONVERSATIONS = pg(RECENT_CONVERSATIONS_QUERY)
_CHANNELS_IN_USE = pg(CHANNELS_IN_USE_QUERY)


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


class PostgresStore:
    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, conninfo: str, *, pool_size: int = 4) -> PostgresStore:
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
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except PoolTimeout as exc:
            await pool.close()
            raise _unavailable(conninfo, exc) from None
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        """One transaction on a pooled connection: committed at the end, rolled back on any error or cancellation."""
        async with self._pool.connection() as conn, conn.transaction():
            yield conn

    async def _write(self, sql: str, args: Sequence[object]) -> int:
        """One statement on its own (autocommit: a transaction of its own, one round trip); rows it changed."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, args)  # type: ignore[arg-type]
            return cursor.rowcount

    async def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self._pool.connection() as conn:
            return await _fetch(conn, sql, args)

    # conversations -----------------------------------------------------------------------------

    async def get_conversation(self, key: ThreadKey) -> Conversation | None:
        async with self._pool.connection() as conn:
            return await _get_conversation(conn, key)

    async def claim_turn(self, key: ThreadKey, persona: Persona, message: NewMessage) -> Turn | None:
        # On a conflict PostgreSQL waits for the other transaction: of two replicas that claim one message
        # at once, the second finds the first's rows once it committed, and claims nothing.
        now = time.time()
        async with self._transaction() as conn:
            created = await _fetch(
                conn,
                "INSERT INTO conversations (team_id, channel_id, thread_ts, system_prompt, persona, params, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                (
                    key.team_id,
                    key.channel_id,
                    key.thread_ts,
                    persona.system_prompt,
                    persona.name,
                    persona.params.to_json(),
                    now,
                ),
            )
            conversation = await _get_conversation(conn, key)
            assert conversation is not None
            user = await _fetch(
                conn,
                "INSERT INTO messages (conversation_id, role, text, slack_user, slack_ts, status, created_at, "
                "updated_at) VALUES (%s, 'user', %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                (conversation.id, message.text, message.slack_user, message.slack_ts, Status.COMPLETE, now, now),
            )
            if not user:
                return None  # already claimed: the transaction commits nothing new
            answer = await _fetch(
                conn,
                "INSERT INTO messages (conversation_id, role, text, reply_to, status, created_at, updated_at) "
                "VALUES (%s, 'assistant', '', %s, %s, %s, %s) RETURNING id",
                (conversation.id, user[0][0], Status.PENDING, now, now),
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
                cursor = await conn.execute(
                    "INSERT INTO messages (conversation_id, role, text, slack_user, slack_ts, status, "
                    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (conversation_id, m.role, m.text, m.slack_user, m.slack_ts, Status.COMPLETE, now, now),
                )
                added += cursor.rowcount
        return added

    async def history(self, conversation_id: int, up_to_ts: str) -> list[StoredMessage]:
        rows = await self._rows(_HISTORY, (conversation_id, up_to_ts, *IN_HISTORY))
        return [stored_message(r) for r in rows]

    async def record_tokens(self, counts: Iterable[tuple[StoredMessage, int]]) -> None:
        rows = [(tokens, m.id, m.text) for m, tokens in counts]
        if not rows:
            return
        async with self._transaction() as conn, conn.cursor() as cursor:
            # Compared with the text that was counted: an edit in the meantime wins.
            await cursor.executemany("UPDATE messages SET tokens = %s WHERE id = %s AND text = %s", rows)

    # answers ---------------------------------------------------------------------------------------

    async def save_answer(
        self,
        answer_id: int,
        *,
        text: str,
        status: Status,
        slack_parts: list[str],
        finish_reason: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        await self._write(
            "UPDATE messages SET text = %s, tokens = CASE WHEN text = %s THEN tokens END, status = %s, "
            "slack_parts = %s, slack_ts = %s, "
            "finish_reason = COALESCE(%s, finish_reason), prompt_tokens = COALESCE(%s, prompt_tokens), "
            "completion_tokens = COALESCE(%s, completion_tokens), total_tokens = COALESCE(%s, total_tokens), "
            "updated_at = %s WHERE id = %s",
            (
                text,
                text,
                status,
                json.dumps(slack_parts),
                slack_parts[0] if slack_parts else None,
                finish_reason,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
                usage.total_tokens if usage else None,
                time.time(),
                answer_id,
            ),
        )

    async def unfinished_answers(self) -> list[UnfinishedAnswer]:
        rows = await self._rows(_UNFINISHED, UNFINISHED)
        return [UnfinishedAnswer(r[0], ThreadKey(r[1], r[2], r[3]), r[4], json.loads(r[5])) for r in rows]

    # edits and deletions from Slack -----------------------------------------------------------------

    async def edit_message(self, team_id: str, channel_id: str, slack_ts: str, text: str) -> bool:
        return await self._update_user_message(
            team_id, channel_id, slack_ts, "text = %s, tokens = CASE WHEN text = %s THEN tokens END", (text, text)
        )

    async def delete_message(self, team_id: str, channel_id: str, slack_ts: str) -> bool:
        return await self._update_user_message(team_id, channel_id, slack_ts, "status = %s", (Status.DELETED,))

    async def _update_user_message(
        self, team_id: str, channel_id: str, slack_ts: str, assignment: str, args: tuple[object, ...]
    ) -> bool:
        changed = await self._write(
            f"UPDATE messages SET {assignment}, updated_at = %s WHERE role = 'user' AND slack_ts = %s "
            "AND conversation_id IN (SELECT id FROM conversations WHERE team_id = %s AND channel_id = %s)",
            (*args, time.time(), slack_ts, team_id, channel_id),
        )
        return changed > 0

    # channel personas -----------------------------------------------------------------------------

    async def get_channel_persona(self, team_id: str, channel_id: str) -> Persona | None:
        rows = await self._rows(
            "SELECT system_prompt, params, persona FROM channel_personas WHERE team_id = %s AND channel_id = %s",
            (team_id, channel_id),
        )
        if not rows:
            return None
        prompt, params, name = rows[0]
        return _persona(prompt, params, name)

    async def set_channel_persona(
        self, team_id: str, channel_id: str, persona: Persona | None, updated_by: str
    ) -> None:
        if persona is None:
            await self._write(
                "DELETE FROM channel_personas WHERE team_id = %s AND channel_id = %s", (team_id, channel_id)
            )
            return
        await self._write(
            "INSERT INTO channel_personas (team_id, channel_id, persona, system_prompt, params, updated_by, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (team_id, channel_id) DO UPDATE SET "
            "persona = excluded.persona, system_prompt = excluded.system_prompt, params = excluded.params, "
            "updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (
                team_id,
                channel_id,
                persona.name,
                persona.system_prompt,
                persona.params.to_json(),
                updated_by,
                time.time(),
            ),
        )

    # feedback ----------------------------------------------------------------------------------------------

    async def record_feedback(self, answer_id: int, user_id: str, value: str) -> bool:
        if value not in FEEDBACK_VALUES:
            return False
        # Inserted from the answer row itself: an id that is no answer selects nothing, so stores nothing.
        stored = await self._write(
            "INSERT INTO feedback (answer_id, user_id, value, at) "
            "SELECT id, %s::text, %s::text, %s::double precision FROM messages WHERE id = %s AND role = 'assistant' "
            "ON CONFLICT (answer_id, user_id) DO UPDATE SET value = excluded.value, at = excluded.at",
            (user_id, value, time.time(), answer_id),
        )
        return stored > 0

    async def feedback_counts(self, team_id: str) -> list[FeedbackCount]:
        rows = await self._rows(_FEEDBACK_COUNTS, (team_id,))
        counts = [FeedbackCount(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
        return sorted(counts, key=lambda c: (c.channel_id, c.persona is not None, c.persona or ""))

    async def feedback_of(self, answer_id: int) -> dict[str, str]:
        rows = await self._rows("SELECT user_id, value FROM feedback WHERE answer_id = %s", (answer_id,))
        return {r[0]: r[1] for r in rows}

    # buttons on answers ----------------------------------------------------------------------------------------

    async def answer_ref(self, answer_id: int) -> AnswerRef | None:
        async with self._pool.connection() as conn:
            return await _answer_ref(conn, answer_id)

    async def is_participant(self, conversation_id: int, user_id: str) -> bool:
        rows = await self._rows(
            "SELECT 1 FROM messages WHERE slack_user = %s AND conversation_id = %s AND role = 'user' "
            "AND status != %s LIMIT 1",
            (user_id, conversation_id, Status.DELETED),
        )
        return bool(rows)

    async def restart_answer(self, answer_id: int) -> Turn | None:
        # Of two clicks at once, the second UPDATE waits for the first's row lock, then re-checks the row:
        # now pending, it matches no more.
        async with self._transaction() as conn:
            cursor = await conn.execute(_RESTART, (Status.PENDING, time.time(), answer_id, *UNFINISHED))
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

    # the Home tab ---------------------------------------------------------------------------------------------

    async def recent_conversations(self, team_id: str, user_id: str, limit: int = 10) -> list[ConversationSummary]:
        rows = await self._rows(_RECENT_CONVERSATIONS, (user_id, team_id, limit))
        return [ConversationSummary(ThreadKey(team_id, r[0], r[1]), r[2] or "", r[3]) for r in rows]

    async def channels_in_use(self, team_id: str, limit: int = 50) -> list[ChannelUse]:
        rows = await self._rows(_CHANNELS_IN_USE, (team_id, team_id, limit, team_id))
        return [ChannelUse(r[0], _persona(r[2], r[3], r[4]) if r[2] is not None else None, r[1]) for r in rows]


async def _fetch(conn: AsyncConnection[Any], sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(sql, args)  # type: ignore[arg-type]  # SQL of this module, never input
    return await cursor.fetchall()


async def _get_conversation(conn: AsyncConnection[Any], key: ThreadKey) -> Conversation | None:
    rows = await _fetch(
        conn,
        "SELECT id, system_prompt, persona, params FROM conversations "
        "WHERE team_id = %s AND channel_id = %s AND thread_ts = %s",
        (key.team_id, key.channel_id, key.thread_ts),
    )
    if not rows:
        return None
    conv_id, prompt, name, params = rows[0]
    return _conversation(conv_id, key, prompt, name, params)


async def _answer_ref(conn: AsyncConnection[Any], answer_id: int) -> AnswerRef | None:
    rows = await _fetch(conn, _ANSWER_REF, (answer_id,))
    return answer_ref(rows[0]) if rows else None


__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "PostgresStore", "migrate", "pg"]
