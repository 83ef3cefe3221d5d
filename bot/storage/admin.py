"""What the admins' features keep, for both SQL backends: usage and its figures, notices sent once, and the
deletes of retention and of data requests. `SQLStore` inherits it; the backend gives the primitives below.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from bot.storage.base import UsageBy, UsageRecord, UsageRow
from bot.storage.queries import (
    ANONYMISE_USAGE,
    ANSWERS_TO,
    CHANNELS_CONVERSATIONS,
    CLAIM_NOTICE,
    DELETE_CHANNEL_PERSONA,
    DELETE_CONVERSATIONS,
    DELETE_CONVERSATIONS_MESSAGES,
    DELETE_MESSAGES,
    FEEDBACK_IN_CONVERSATIONS,
    FEEDBACK_ON,
    IN_TEAM,
    INSERT_USAGE,
    PERSONS_FEEDBACK,
    PERSONS_QUESTIONS,
    RETENTION_FEEDBACK,
    RETENTION_MESSAGES,
    TEAM_OF_FEEDBACK,
    TEAM_OF_MESSAGE,
    USAGE_COLUMNS,
    usage_query,
    usage_record_row,
    usage_row,
)

T = TypeVar("T")

# Ids per statement when deleting by id: well under either database's limit on parameters.
ID_BATCH = 500


class Tx(Protocol):
    """Statements (`?` placeholders) inside one transaction of `SQLStore._atomically`."""

    async def rows(self, sql: str, args: Sequence[object] = ()) -> Sequence[Sequence[Any]]: ...

    async def write(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run one statement; the rows it changed."""
        ...


def _batches(ids: Sequence[int]) -> Iterable[tuple[tuple[int, ...], str]]:
    """`ids` in batches, each with its placeholders."""
    for start in range(0, len(ids), ID_BATCH):
        batch = tuple(ids[start : start + ID_BATCH])
        yield batch, ",".join("?" * len(batch))


class AdminQueries:
    """Usage, notices and deletes, in SQL both backends read; `SQLStore` provides the primitives."""

    # Appended to a SELECT whose rows a transaction goes on to delete: PostgreSQL locks them (" FOR UPDATE"),
    # so concurrent writers wait rather than slip in between; SQLite's transactions already exclude writers.
    _lock_rows = ""
    # Appended to a text key in ORDER BY so both databases order it byte by byte (SQLite's default).
    _bytes_order = ""

    async def _rows(self, sql: str, args: Iterable[object] = ()) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    async def _write(self, sql: str, args: Iterable[object]) -> int:
        raise NotImplementedError

    async def _atomically(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `work` as one transaction and return what it returns.

        PostgreSQL runs it a second time if the connection broke on the way (as it sends a lone statement
        again): only for work that does the same when run twice.
        """
        raise NotImplementedError

    # usage and notices ------------------------------------------------------------------------------------------

    async def record_usage(self, record: UsageRecord) -> None:
        await self._write(INSERT_USAGE, usage_record_row(record))

    async def usage_by(
        self,
        by: UsageBy,
        *,
        since: float,
        team_id: str | None = None,
        user_id: str | None = None,
        channel_id: str | None = None,
        limit: int | None = None,
    ) -> list[UsageRow]:
        if by not in USAGE_COLUMNS:  # `by` becomes a column name in the SQL: nothing else may pass
            raise ValueError(f"usage cannot be grouped by {by!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        sql, args = usage_query(
            by,
            since=since,
            team_id=team_id,
            user_id=user_id,
            channel_id=channel_id,
            limit=limit,
            bytes_order=self._bytes_order,
        )
        return [usage_row(r) for r in await self._rows(sql, args)]

    async def usage_total(
        self, *, since: float, team_id: str | None = None, user_id: str | None = None, channel_id: str | None = None
    ) -> UsageRow:
        sql, args = usage_query(None, since=since, team_id=team_id, user_id=user_id, channel_id=channel_id)
        return usage_row((await self._rows(sql, args))[0])

    async def claim_notice(self, team_id: str, kind: str, period: str) -> bool:
        # Sent again on a lost connection (PostgreSQL), a claim that landed reads as not claimed: a notice may
        # then go unsent, never twice.
        return await self._write(CLAIM_NOTICE, (team_id, kind, period, time.time())) > 0

    # retention and data requests -------------------------------------------------------------------------------
    # Each is one transaction, and deleting again what is already gone changes nothing, so a run the PostgreSQL
    # store repeats after a lost connection is harmless (its count then leaves out what the first run deleted).

    async def forget_before(self, cutoff: float) -> int:
        async def work(tx: Tx) -> int:
            await tx.write(RETENTION_FEEDBACK, (cutoff,))
            return await tx.write(RETENTION_MESSAGES, (cutoff, cutoff))

        return await self._atomically(work)

    async def forget_user(self, user_id: str, *, team_id: str | None = None) -> int:
        team = () if team_id is None else (team_id,)

        async def work(tx: Tx) -> int:
            sql = PERSONS_QUESTIONS.format(team=TEAM_OF_MESSAGE if team else "", lock=self._lock_rows)
            questions = [r[0] for r in await tx.rows(sql, (user_id, *team))]
            answers: list[int] = []
            for batch, marks in _batches(questions):
                answers += [r[0] for r in await tx.rows(ANSWERS_TO.format(ids=marks, lock=self._lock_rows), batch)]
            for batch, marks in _batches(answers):
                await tx.write(FEEDBACK_ON.format(ids=marks), batch)
            await tx.write(PERSONS_FEEDBACK.format(team=TEAM_OF_FEEDBACK if team else ""), (user_id, *team))
            deleted = 0
            for ids in (answers, questions):  # answers first: they refer to their questions
                for batch, marks in _batches(ids):
                    deleted += await tx.write(DELETE_MESSAGES.format(ids=marks), batch)
            await tx.write(ANONYMISE_USAGE.format(team=IN_TEAM if team else ""), (user_id, *team))
            return deleted

        return await self._atomically(work)

    async def forget_channel(self, channel_id: str, *, team_id: str | None = None) -> int:
        # Usage rows stay whole, channel id included: a channel id names no one, and a workspace's budget must
        # not start again because a channel was forgotten.
        team = () if team_id is None else (team_id,)
        in_team = IN_TEAM if team else ""

        async def work(tx: Tx) -> int:
            sql = CHANNELS_CONVERSATIONS.format(team=in_team, lock=self._lock_rows)
            conversations = [r[0] for r in await tx.rows(sql, (channel_id, *team))]
            deleted = 0
            for batch, marks in _batches(conversations):
                await tx.write(FEEDBACK_IN_CONVERSATIONS.format(ids=marks), batch)
                deleted += await tx.write(DELETE_CONVERSATIONS_MESSAGES.format(ids=marks), batch)
                await tx.write(DELETE_CONVERSATIONS.format(ids=marks), batch)
            await tx.write(DELETE_CHANNEL_PERSONA.format(team=in_team), (channel_id, *team))
            return deleted

        return await self._atomically(work)
