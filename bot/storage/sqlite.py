"""The SQLite backend (`aiosqlite`, WAL mode).

One connection serves the process. Every write runs as one transaction under an asyncio lock, because
statements from different coroutines would otherwise interleave inside each other's transactions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

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
    ThreadKey,
    Turn,
    UnfinishedAnswer,
    Usage,
)
from bot.storage.migrations import migrate
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


async def _to_the_end(work: Awaitable[None]) -> None:
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


class SQLiteStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=5000")
        # With WAL, NORMAL survives process crashes and skips an fsync per commit (answers save often).
        await db.execute("PRAGMA synchronous=NORMAL")
        await migrate(db)
        return cls(db)

    async def close(self) -> None:
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
        """One statement on its own: atomic without BEGIN and COMMIT, so one trip to SQLite's thread, not three.

        It waits for the write lock, so it never lands inside another coroutine's transaction. A caller
        cancelled meanwhile leaves nothing open: the statement commits or fails by itself.
        """
        async with self._write_lock:
            cursor = await self._db.execute(sql, tuple(args))
            return cursor.rowcount

    async def _rows(self, sql: str, args: Iterable[object] = ()) -> list[aiosqlite.Row]:
        # One trip to SQLite's thread (a cursor's execute, fetch and close would be three).
        return list(await self._db.execute_fetchall(sql, tuple(args)))

    # conversations -----------------------------------------------------------------------------

    async def get_conversation(self, key: ThreadKey) -> Conversation | None:
        rows = await self._rows(
            "SELECT id, system_prompt, persona, params FROM conversations "
            "WHERE team_id = ? AND channel_id = ? AND thread_ts = ?",
            (key.team_id, key.channel_id, key.thread_ts),
        )
        if not rows:
            return None
        conv_id, prompt, name, params = rows[0]
        return _conversation(conv_id, key, prompt, name, params)

    async def claim_turn(self, key: ThreadKey, persona: Persona, message: NewMessage) -> Turn | None:
        now = time.time()
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO conversations (team_id, channel_id, thread_ts, system_prompt, persona, params, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
            created = cursor.rowcount == 1
            conversation = await self.get_conversation(key)
            assert conversation is not None
            cursor = await db.execute(
                "INSERT INTO messages (conversation_id, role, text, slack_user, slack_ts, status, created_at, "
                "updated_at) VALUES (?, 'user', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (conversation.id, message.text, message.slack_user, message.slack_ts, Status.COMPLETE, now, now),
            )
            if cursor.rowcount == 0:
                return None  # already claimed: the transaction commits nothing new
            user_id = cursor.lastrowid
            cursor = await db.execute(
                "INSERT INTO messages (conversation_id, role, text, reply_to, status, created_at, updated_at) "
                "VALUES (?, 'assistant', '', ?, ?, ?, ?)",
                (conversation.id, user_id, Status.PENDING, now, now),
            )
            assert user_id is not None and cursor.lastrowid is not None
            return Turn(
                conversation=conversation,
                user_message_id=user_id,
                answer_id=cursor.lastrowid,
                user_ts=message.slack_ts,
                created_conversation=created,
            )

    async def add_context(self, conversation_id: int, messages: list[NewMessage]) -> int:
        now = time.time()
        added = 0
        async with self._transaction() as db:
            for m in messages:
                cursor = await db.execute(
                    "INSERT INTO messages (conversation_id, role, text, slack_user, slack_ts, status, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (conversation_id, m.role, m.text, m.slack_user, m.slack_ts, Status.COMPLETE, now, now),
                )
                added += cursor.rowcount
        return added

    async def history(self, conversation_id: int, up_to_ts: str) -> list[StoredMessage]:
        # An answer sits right after the message it replies to, wherever its own Slack ts falls: a person
        # may write again while the answer is still being written. Slack ts strings are fixed-width
        # ("1700000000.000100"), so text order is time order.
        rows = await self._rows(HISTORY_QUERY, (conversation_id, up_to_ts, *IN_HISTORY))
        return [stored_message(r) for r in rows]

    async def record_tokens(self, counts: Iterable[tuple[StoredMessage, int]]) -> None:
        rows = [(tokens, m.id, m.text) for m, tokens in counts]
        if not rows:
            return
        async with self._transaction() as db:
            # Compared with the text that was counted: an edit in the meantime wins.
            await db.executemany("UPDATE messages SET tokens = ? WHERE id = ? AND text = ?", rows)

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
        # Saved before every Slack update an answer makes: the cheapest write the store has.
        await self._write(
            "UPDATE messages SET text = ?, tokens = CASE WHEN text = ? THEN tokens END, status = ?, "
            "slack_parts = ?, slack_ts = ?, "
            "finish_reason = COALESCE(?, finish_reason), prompt_tokens = COALESCE(?, prompt_tokens), "
            "completion_tokens = COALESCE(?, completion_tokens), total_tokens = COALESCE(?, total_tokens), "
            "updated_at = ? WHERE id = ?",
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
        rows = await self._rows(UNFINISHED_QUERY, UNFINISHED)
        return [UnfinishedAnswer(r[0], ThreadKey(r[1], r[2], r[3]), r[4], json.loads(r[5])) for r in rows]

    # edits and deletions from Slack -----------------------------------------------------------------

    async def edit_message(self, team_id: str, channel_id: str, slack_ts: str, text: str) -> bool:
        # A count stays with the text it counted (Slack also sends edits that change only attachments).
        return await self._update_user_message(
            team_id, channel_id, slack_ts, "text = ?, tokens = CASE WHEN text = ? THEN tokens END", (text, text)
        )

    async def delete_message(self, team_id: str, channel_id: str, slack_ts: str) -> bool:
        return await self._update_user_message(team_id, channel_id, slack_ts, "status = ?", (Status.DELETED,))

    async def _update_user_message(
        self, team_id: str, channel_id: str, slack_ts: str, assignment: str, args: tuple[object, ...]
    ) -> bool:
        changed = await self._write(
            f"UPDATE messages SET {assignment}, updated_at = ? WHERE role = 'user' AND slack_ts = ? "
            "AND conversation_id IN (SELECT id FROM conversations WHERE team_id = ? AND channel_id = ?)",
            (*args, time.time(), slack_ts, team_id, channel_id),
        )
        return changed > 0

    # channel personas -----------------------------------------------------------------------------

    async def get_channel_persona(self, team_id: str, channel_id: str) -> Persona | None:
        rows = await self._rows(
            "SELECT system_prompt, params, persona FROM channel_personas WHERE team_id = ? AND channel_id = ?",
            (team_id, channel_id),
        )
        if not rows:
            return None
        prompt, params, name = rows[0]
        return _persona(prompt, params, name)

    async def set_channel_persona(
        self, team_id: str, channel_id: str, persona: Persona | None, updated_by: str
    ) -> None:
        async with self._transaction() as db:
            if persona is None:
                await db.execute(
                    "DELETE FROM channel_personas WHERE team_id = ? AND channel_id = ?", (team_id, channel_id)
                )
                return
            await db.execute(
                "INSERT INTO channel_personas (team_id, channel_id, persona, system_prompt, params, updated_by, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (team_id, channel_id) DO UPDATE SET "
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
            "SELECT id, ?, ?, ? FROM messages WHERE id = ? AND role = 'assistant' "
            "ON CONFLICT (answer_id, user_id) DO UPDATE SET value = excluded.value, at = excluded.at",
            (user_id, value, time.time(), answer_id),
        )
        return stored > 0

    async def feedback_counts(self, team_id: str) -> list[FeedbackCount]:
        rows = await self._rows(FEEDBACK_COUNTS_QUERY, (team_id,))
        counts = [FeedbackCount(r[0], r[1], r[2], r[3]) for r in rows]
        # Sorted here: databases disagree on where NULL (the default persona) sorts.
        return sorted(counts, key=lambda c: (c.channel_id, c.persona is not None, c.persona or ""))

    async def feedback_of(self, answer_id: int) -> dict[str, str]:
        rows = await self._rows("SELECT user_id, value FROM feedback WHERE answer_id = ?", (answer_id,))
        return {r[0]: r[1] for r in rows}

    # buttons on answers ----------------------------------------------------------------------------------------

    async def answer_ref(self, answer_id: int) -> AnswerRef | None:
        rows = await self._rows(ANSWER_REF_QUERY, (answer_id,))
        if not rows:
            return None
        return answer_ref(rows[0])

    async def is_participant(self, conversation_id: int, user_id: str) -> bool:
        rows = await self._rows(
            "SELECT 1 FROM messages WHERE slack_user = ? AND conversation_id = ? AND role = 'user' "
            "AND status != ? LIMIT 1",
            (user_id, conversation_id, Status.DELETED),
        )
        return bool(rows)

    async def restart_answer(self, answer_id: int) -> Turn | None:
        async with self._transaction() as db:
            cursor = await db.execute(RESTART_QUERY, (Status.PENDING, time.time(), answer_id, *UNFINISHED))
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

    # the Home tab ---------------------------------------------------------------------------------------------

    async def recent_conversations(self, team_id: str, user_id: str, limit: int = 10) -> list[ConversationSummary]:
        rows = await self._rows(RECENT_CONVERSATIONS_QUERY, (user_id, team_id, limit))
        return [ConversationSummary(ThreadKey(team_id, r[0], r[1]), r[2] or "", r[3]) for r in rows]

    async def channels_in_use(self, team_id: str, limit: int = 50) -> list[ChannelUse]:
        rows = await self._rows(CHANNELS_IN_USE_QUERY, (team_id, team_id, limit, team_id))
        return [ChannelUse(r[0], _persona(r[2], r[3], r[4]) if r[2] is not None else None, r[1]) for r in rows]
