"""Slack's rate budget for every replica of the bot at once, kept in PostgreSQL (table `slack_budget`, m008).

Slack counts calls per app and workspace, not per process: replicas that each kept their own window would
together overrun it. So each call the local budget (`bot.core.pacing.CallBudget`) lets go is also taken
here, in one statement and one round trip: an `INSERT ... ON CONFLICT DO UPDATE` whose row lock serializes
the replicas on one (workspace, key). It prunes the row's window, grants the call when the window holds fewer
than the caller allows and no 429 pauses the key, records it, and returns the window. Times are the
database's clock (`clock_timestamp()`), handed back as ages so that each replica maps them onto its own.

The same row carries each replica's count of final calls its answers are owed on the key (`chat.update`,
`chat.appendStream`), so every replica keeps slots free for all of them; a count stands for one window
after its replica last said it (a replica that stopped, or died, stops counting by then).

Nothing here may fail a Slack call: when the database cannot answer within `TIMEOUT`, `take` returns None (the
local budget decides alone), the outage is logged once, and the shared budget is left alone for `REST`
seconds before it is asked again. SQLite (one process) never builds one of these.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from bot.core.pacing import SharedWindow

log = logging.getLogger(__name__)

# The longest a round trip may take (a free connection from the pool included) before the call goes on the
# local budget's word alone.
TIMEOUT = 2.0
# After a failure, how long the database is left alone (calls are paced locally) before it is asked again.
REST = 10.0
# How often one replica's grants also sweep idle rows out, and how long a row must have been idle: longer than
# every key's window and every owed count, so a swept row held nothing that still counted.
SWEEP_EVERY = 60.0
IDLE_AFTER = 120.0

# One statement per call. `clock` is read once (clock_timestamp() moves within a statement); EXCLUDED.used_at
# carries it into the update. The update's expressions all see the row as it was before. `swept` deletes idle
# rows of other keys (SKIP LOCKED: it never waits on, nor deadlocks with, a replica reviving one).
_WINDOW = "ARRAY(SELECT c FROM unnest(b.calls) AS c WHERE c > EXCLUDED.used_at - %(span)s ORDER BY c)"
_GRANT = (
    "(b.blocked_until <= EXCLUDED.used_at AND "
    "(SELECT count(*) FROM unnest(b.calls) AS c WHERE c > EXCLUDED.used_at - %(span)s) < %(allowed)s)"
)
_TAKE = f"""
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
swept AS (
    DELETE FROM slack_budget WHERE ctid IN (
        SELECT s.ctid FROM slack_budget AS s, clock
        WHERE %(sweep)s AND s.used_at < clock.now - %(idle)s AND s.blocked_until < clock.now
            AND (s.team_id, s.key) <> (%(team)s, %(key)s)
        FOR UPDATE OF s SKIP LOCKED
    )
)
INSERT INTO slack_budget AS b (team_id, key, calls, blocked_until, owed, used_at, last_granted)
SELECT %(team)s, %(key)s, ARRAY[now], 0,
    CASE WHEN %(owed)s > 0 THEN jsonb_build_object(%(me)s::text, jsonb_build_array(%(owed)s, now))
    ELSE '{{}}'::jsonb END,
    now, true
FROM clock
ON CONFLICT (team_id, key) DO UPDATE SET
    calls = CASE WHEN {_GRANT} THEN {_WINDOW} || EXCLUDED.used_at ELSE {_WINDOW} END,
    last_granted = {_GRANT},
    owed = coalesce(
        (SELECT jsonb_object_agg(k, v) FROM jsonb_each(b.owed) AS e(k, v)
         WHERE k <> %(me)s::text AND (v->>1)::float8 > EXCLUDED.used_at - %(span)s),
        '{{}}'::jsonb
    ) || EXCLUDED.owed,
    used_at = EXCLUDED.used_at
RETURNING last_granted, used_at, calls, blocked_until,
    (SELECT coalesce(sum((v->>0)::int), 0) FROM jsonb_each(b.owed) AS e(k, v) WHERE k <> %(me)s::text)::int
"""
_PAUSE = """
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO slack_budget AS b (team_id, key, calls, blocked_until, owed, used_at, last_granted)
SELECT %(team)s, %(key)s, '{}', now + %(seconds)s, '{}', now, false FROM clock
ON CONFLICT (team_id, key) DO UPDATE SET blocked_until = greatest(b.blocked_until, EXCLUDED.blocked_until)
"""
_SWEEP = """
DELETE FROM slack_budget
WHERE used_at < extract(epoch FROM clock_timestamp()) - %(idle)s
    AND blocked_until < extract(epoch FROM clock_timestamp())
"""


class SharedBudget:
    """The Slack budget every replica on one PostgreSQL database draws from (`bot.slack.pacer.SharedCalls`)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        *,
        replica: str | None = None,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`pool`: autocommit connections (`PostgresStore.pool`); `replica` names this process in owed counts."""
        self._pool = pool
        self.replica = replica or uuid.uuid4().hex[:12]
        self._timeout = timeout
        self._clock = clock
        self._swept: float | None = None  # the first grant sweeps: rows a stopped replica left behind go
        self._resting_until: float | None = None  # set while the database is failing

    async def take(self, team_id: str, key: str, *, span: float, allowed: int, owed: int = 0) -> SharedWindow | None:
        """Count one call on `key` if the last `span` seconds hold fewer than `allowed` calls and no 429 pauses
        it; `owed` is this replica's count of final calls owed on the key. None: the database did not answer."""
        if self._resting():
            return None
        now = self._clock()
        sweep = self._swept is None or now - self._swept >= SWEEP_EVERY
        if sweep:
            self._swept = now
        params = {
            "team": team_id,
            "key": key,
            "span": float(span),
            "allowed": int(allowed),
            "owed": int(owed),
            "me": self.replica,
            "sweep": sweep,
            "idle": IDLE_AFTER,
        }
        try:
            async with asyncio.timeout(self._timeout), self._pool.connection() as conn:
                cursor = await conn.execute(_TAKE, params)  # type: ignore[arg-type]  # SQL of this module
                row = await cursor.fetchone()
        except Exception as exc:  # whatever the database or the pool says, the Slack call goes on
            self._failed(exc)
            return None
        self._answered()
        assert row is not None  # INSERT ... ON CONFLICT DO UPDATE always returns its row
        granted, db_now, calls, blocked_until, owed_elsewhere = row
        return SharedWindow(
            granted=bool(granted),
            ages=tuple(db_now - t for t in calls),
            paused_for=max(blocked_until - db_now, 0.0),
            owed_elsewhere=int(owed_elsewhere),
        )

    async def pause(self, team_id: str, key: str, seconds: float) -> None:
        """Pause `key` for every replica for `seconds` (Slack's Retry-After), or longer if already paused."""
        if self._resting():
            return
        try:
            async with asyncio.timeout(self._timeout), self._pool.connection() as conn:
                await conn.execute(_PAUSE, {"team": team_id, "key": key, "seconds": float(max(seconds, 0.0))})
        except Exception as exc:  # the local budget has paused the key anyway
            self._failed(exc)
            return
        self._answered()

    async def sweep(self, idle: float = IDLE_AFTER) -> int:
        """Delete rows no call has asked for in `idle` seconds (and no 429 still pauses); how many went.

        Grants sweep every SWEEP_EVERY seconds on their own; this is for maintenance and tests, and raises what
        the database raises.
        """
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_SWEEP, {"idle": float(idle)})
            return cursor.rowcount

    def _resting(self) -> bool:
        return self._resting_until is not None and self._clock() < self._resting_until

    def _failed(self, exc: Exception) -> None:
        if self._resting_until is None:  # once per outage
            reason = " ".join(str(exc).split()) or type(exc).__name__
            log.warning(
                "the shared Slack budget is unavailable (%s); pacing within this process until the database "
                "answers again",
                reason,
            )
        self._resting_until = self._clock() + REST

    def _answered(self) -> None:
        if self._resting_until is not None:
            log.info("the shared Slack budget answers again")
            self._resting_until = None
