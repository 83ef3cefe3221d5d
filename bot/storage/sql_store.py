"""What both SQL backends do alike, written once: `SQLStore` holds every `Store` method that is one query or one
statement, in SQL both SQLite and PostgreSQL read, with `?` placeholders.

A backend gives it two primitives, `_rows(sql, args)` and `_write(sql, args)` (a statement on its own,
returning the rows it changed), and `_atomically(work)`, which runs shared work of several statements (the
deletes of retention and data requests, in `bot.storage.admin`) as one transaction. It writes itself only what
differs: opening and migrating, its other transactions (claiming a turn, backfilling a thread, re-running an
answer) and how new ids come back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from bot.storage.admin import AdminQueries
from bot.storage.base import (
    FEEDBACK_VALUES,
    LEASE_SECONDS,
    UNFINISHED,
    AnswerRef,
    ChannelUse,
    Conversation,
    ConversationSummary,
    FeedbackCount,
    Persona,
    Status,
    StoredMessage,
    ThreadKey,
    UnfinishedAnswer,
    Usage,
)
from bot.storage.queries import (
    ANSWER_REF_QUERY,
    CHANNELS_IN_USE_QUERY,
    CONVERSATION_QUERY,
    EARLIER_UNFINISHED_QUERY,
    FEEDBACK_COUNTS_QUERY,
    HISTORY_QUERY,
    IN_HISTORY,
    RECENT_CONVERSATIONS_QUERY,
    RELEASE_QUERY,
    RENEW_QUERY,
    UNFINISHED_QUERY,
    answer_ref,
    files_json,
    stored_message,
)
from bot.storage.queries import conversation as _conversation
from bot.storage.queries import persona as _persona


def new_owner() -> str:
    """A name for this process as a lease holder: unique per start, so a restarted process is a new holder."""
    return uuid.uuid4().hex[:12]


class SQLStore(AdminQueries):
    """The `Store` methods both backends share; a subclass provides `_rows` and `_write`."""

    shared = False

    def __init__(self, *, owner: str | None = None, lease_seconds: float = LEASE_SECONDS) -> None:
        self.owner = owner or new_owner()
        self.lease_seconds = lease_seconds

    def _lease_until(self) -> float:
        return time.time() + self.lease_seconds

    async def ping(self) -> None:
        await self._rows("SELECT 1")

    async def _write_returning(self, sql: str, args: Iterable[object]) -> Sequence[Sequence[Any]]:
        """One statement on its own that changes rows and returns some (`RETURNING`)."""
        raise NotImplementedError

    # conversations -----------------------------------------------------------------------------

    async def get_conversation(self, key: ThreadKey) -> Conversation | None:
        rows = await self._rows(CONVERSATION_QUERY, (key.team_id, key.channel_id, key.thread_ts))
        if not rows:
            return None
        conv_id, prompt, name, params = rows[0]
        return _conversation(conv_id, key, prompt, name, params)

    async def history(self, conversation_id: int, up_to_ts: str) -> list[StoredMessage]:
        # An answer sits right after the message it replies to, wherever its own Slack ts falls: a person
        # may write again while the answer is still being written. Slack ts strings are fixed-width
        # ("1700000000.000100"), so text order is time order.
        rows = await self._rows(HISTORY_QUERY, (conversation_id, up_to_ts, *IN_HISTORY))
        return [stored_message(r) for r in rows]

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
    ) -> bool:
        # An answer's first save, its last, and any that changes its status or first message (`save_progress`
        # saves the text in between). It renews the lease too, and writes nothing once another process holds
        # it (the answer was taken over).
        changed = await self._write(
            "UPDATE messages SET text = ?, tokens = CASE WHEN text = ? THEN tokens END, status = ?, "
            "slack_parts = ?, slack_ts = ?, "
            "finish_reason = COALESCE(?, finish_reason), prompt_tokens = COALESCE(?, prompt_tokens), "
            "completion_tokens = COALESCE(?, completion_tokens), total_tokens = COALESCE(?, total_tokens), "
            "updated_at = ?, lease_until = ? WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ?)",
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
                self._lease_until() if status in UNFINISHED else None,
                answer_id,
                self.owner,
            ),
        )
        return changed > 0

    async def save_progress(self, answer_id: int, *, text: str, slack_parts: list[str]) -> bool:
        # No indexed column: SQLite rewrites the row's page alone, where save_answer also rewrites a page of
        # four indexes (two on the status, the first message's, the activity's): five pages to the WAL in all.
        # PostgreSQL can update the row in place.
        changed = await self._write(
            "UPDATE messages SET text = ?, tokens = CASE WHEN text = ? THEN tokens END, slack_parts = ?, "
            "lease_until = ? WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ?)",
            (text, text, json.dumps(slack_parts), self._lease_until(), answer_id, self.owner),
        )
        return changed > 0

    async def unfinished_answers(self) -> list[UnfinishedAnswer]:
        rows = await self._rows(UNFINISHED_QUERY, UNFINISHED)
        return [UnfinishedAnswer(r[0], ThreadKey(r[1], r[2], r[3]), r[4], json.loads(r[5])) for r in rows]

    # leases ----------------------------------------------------------------------------------------------

    async def renew_leases(self, answer_ids: Iterable[int]) -> set[int]:
        ids = list(answer_ids)
        if not ids:
            return set()
        rows = await self._write_returning(
            RENEW_QUERY.format(ids=",".join("?" * len(ids))), (self._lease_until(), self.owner, *UNFINISHED, *ids)
        )
        return {r[0] for r in rows}

    async def release_leases(self, answer_ids: Iterable[int]) -> None:
        ids = list(answer_ids)
        if ids:
            await self._write(RELEASE_QUERY.format(ids=",".join("?" * len(ids))), (self.owner, *ids))

    async def take_lapsed(self, limit: int = 20) -> list[AnswerRef]:
        taken = await self._take_lapsed(limit)
        refs = [await self.answer_ref(answer_id) for answer_id in sorted(taken)]
        return [ref for ref in refs if ref is not None]

    async def _take_lapsed(self, limit: int) -> list[int]:
        """Lease lapsed answers to this process; the ids taken."""
        raise NotImplementedError

    async def earlier_unfinished(self, conversation_id: int, user_ts: str) -> bool:
        return bool(await self._rows(EARLIER_UNFINISHED_QUERY, (conversation_id, *UNFINISHED, user_ts)))

    async def save_files(self, message_id: int, files: Sequence[dict[str, Any]]) -> None:
        await self._write("UPDATE messages SET files = ? WHERE id = ?", (files_json(files), message_id))

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
        if persona is None:
            await self._write(
                "DELETE FROM channel_personas WHERE team_id = ? AND channel_id = ?", (team_id, channel_id)
            )
            return
        await self._write(
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
            # Typed: PostgreSQL cannot infer a parameter's type in a SELECT list.
            "SELECT id, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION) FROM messages "
            "WHERE id = ? AND role = 'assistant' "
            "ON CONFLICT (answer_id, user_id) DO UPDATE SET value = excluded.value, at = excluded.at",
            (user_id, value, time.time(), answer_id),
        )
        return stored > 0

    async def feedback_counts(self, team_id: str) -> list[FeedbackCount]:
        rows = await self._rows(FEEDBACK_COUNTS_QUERY, (team_id,))
        counts = [FeedbackCount(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
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

    # the Home tab ---------------------------------------------------------------------------------------------

    async def recent_conversations(self, team_id: str, user_id: str, limit: int = 10) -> list[ConversationSummary]:
        rows = await self._rows(RECENT_CONVERSATIONS_QUERY, (user_id, team_id, limit))
        return [ConversationSummary(ThreadKey(team_id, r[0], r[1]), r[2] or "", r[3]) for r in rows]

    async def channels_in_use(self, team_id: str, limit: int = 50) -> list[ChannelUse]:
        rows = await self._rows(CHANNELS_IN_USE_QUERY, (team_id, team_id, limit, team_id))
        return [ChannelUse(r[0], _persona(r[2], r[3], r[4]) if r[2] is not None else None, r[1]) for r in rows]
