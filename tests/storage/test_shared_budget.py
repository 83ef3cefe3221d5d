"""The Slack budget replicas share through PostgreSQL: one statement per call, serialized by the row lock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bot.storage import shared_budget
from bot.storage.postgres import PostgresStore
from bot.storage.shared_budget import SharedBudget

TEAM = "T0TEAM"
KEY = "chat.update"
SPAN = 60.5


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Two stores on one database, each with a pool of its own: two replicas of the bot."""
    stores = [await PostgresStore.open(database_url, pool_size=2) for _ in range(2)]
    yield stores
    for store in stores:
        await store.close()


async def keys(store: PostgresStore) -> set[str]:
    return {row[0] for row in await store._rows("SELECT key FROM slack_budget")}


async def test_replicas_racing_for_one_window_never_get_more_than_the_limit(replicas: list[PostgresStore]) -> None:
    a, b = (SharedBudget(store.pool) for store in replicas)
    takes = [budget.take(TEAM, KEY, span=SPAN, allowed=7) for _ in range(20) for budget in (a, b)]
    answers = await asyncio.gather(*takes)
    assert all(answer is not None for answer in answers)
    assert sum(answer.granted for answer in answers if answer) == 7
    # Every answer shows the window as it stood: never more than the limit, the granted call included.
    assert max(len(answer.ages) for answer in answers if answer) == 7
    refused = await b.take(TEAM, KEY, span=SPAN, allowed=7)
    assert refused is not None and not refused.granted and len(refused.ages) == 7
    assert all(0 <= age < 5 for age in refused.ages)  # ages by the database's clock, the oldest first
    assert list(refused.ages) == sorted(refused.ages, reverse=True)
    other = await a.take(TEAM, "chat.postMessage#C1", span=SPAN, allowed=7)  # another key: its own window
    assert other is not None and other.granted and len(other.ages) == 1


async def test_the_window_slides_by_the_database_clock(replicas: list[PostgresStore]) -> None:
    a, b = (SharedBudget(store.pool) for store in replicas)
    first = await a.take(TEAM, KEY, span=0.3, allowed=1)
    assert first is not None and first.granted
    refused = await b.take(TEAM, KEY, span=0.3, allowed=1)
    assert refused is not None and not refused.granted
    await asyncio.sleep(0.35)  # the first call leaves the window
    later = await b.take(TEAM, KEY, span=0.3, allowed=1)
    assert later is not None and later.granted and later.ages == (0.0,)


async def test_a_429_met_by_one_replica_pauses_the_key_for_the_other(replicas: list[PostgresStore]) -> None:
    a, b = (SharedBudget(store.pool) for store in replicas)
    assert (await a.take(TEAM, KEY, span=SPAN, allowed=50)) is not None
    await a.pause(TEAM, KEY, 30)
    await a.pause(TEAM, KEY, 5)  # a shorter Retry-After heard later never shortens the pause
    paused = await b.take(TEAM, KEY, span=SPAN, allowed=50)
    assert paused is not None and not paused.granted
    assert 25 < paused.paused_for <= 30
    assert len(paused.ages) == 1  # the refused call is not counted
    other = await b.take(TEAM, "chat.delete", span=SPAN, allowed=50)
    assert other is not None and other.granted and other.paused_for == 0
    await b.pause("T0OTHER", "chat.delete", 30)  # a key paused before any call on it has a row too
    elsewhere = await a.take("T0OTHER", "chat.delete", span=SPAN, allowed=50)
    assert elsewhere is not None and not elsewhere.granted and elsewhere.ages == ()


async def test_each_replica_hears_what_the_others_are_owed(replicas: list[PostgresStore]) -> None:
    a, b = (SharedBudget(store.pool) for store in replicas)
    c = SharedBudget(replicas[0].pool)  # a third process on the first's database
    await a.take(TEAM, KEY, span=SPAN, allowed=50, owed=3)
    await b.take(TEAM, KEY, span=SPAN, allowed=50, owed=1)
    heard = await c.take(TEAM, KEY, span=SPAN, allowed=50)
    assert heard is not None and heard.owed_elsewhere == 4
    heard = await a.take(TEAM, KEY, span=SPAN, allowed=50, owed=2)  # its own count is not its reserve twice
    assert heard is not None and heard.owed_elsewhere == 1
    await b.take(TEAM, KEY, span=SPAN, allowed=50, owed=0)  # b's answers are done
    heard = await c.take(TEAM, KEY, span=SPAN, allowed=50)
    assert heard is not None and heard.owed_elsewhere == 2
    # A count lapses one window after its replica last said it (a replica that stopped, or died).
    await a.take(TEAM, "chat.appendStream", span=0.2, allowed=50, owed=5)
    heard = await b.take(TEAM, "chat.appendStream", span=0.2, allowed=50)
    assert heard is not None and heard.owed_elsewhere == 5
    await asyncio.sleep(0.25)
    heard = await b.take(TEAM, "chat.appendStream", span=0.2, allowed=50)
    assert heard is not None and heard.owed_elsewhere == 0


async def test_idle_rows_are_swept_and_paused_ones_kept(replicas: list[PostgresStore]) -> None:
    store = replicas[0]
    budget = SharedBudget(store.pool)
    for key in ("chat.postMessage#C1", "chat.postMessage#C2", "chat.update"):
        await budget.take(TEAM, key, span=SPAN, allowed=50)
    await budget.pause(TEAM, "chat.update", 1000)
    await store._write("UPDATE slack_budget SET used_at = used_at - 1000 WHERE key <> 'chat.postMessage#C2'", ())
    assert await budget.sweep() == 1
    assert await keys(store) == {"chat.postMessage#C2", "chat.update"}  # the paused row stays

    # A replica's grants sweep on their own, the first one at once (rows a stopped replica left behind).
    await budget.take(TEAM, "chat.postMessage#C1", span=SPAN, allowed=50)
    await store._write("UPDATE slack_budget SET used_at = used_at - 1000 WHERE key = 'chat.postMessage#C1'", ())
    await SharedBudget(replicas[1].pool).take(TEAM, "chat.delete", span=SPAN, allowed=50)
    assert await keys(store) == {"chat.postMessage#C2", "chat.update", "chat.delete"}


async def test_a_failing_database_never_fails_the_call_and_is_logged_once(
    replicas: list[PostgresStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = replicas[0]
    now = [0.0]
    budget = SharedBudget(store.pool, clock=lambda: now[0])
    assert await budget.take(TEAM, KEY, span=SPAN, allowed=50) is not None
    await store._write("ALTER TABLE slack_budget RENAME TO slack_budget_gone", ())
    with caplog.at_level(logging.INFO, logger="bot.storage.shared_budget"):
        assert await budget.take(TEAM, KEY, span=SPAN, allowed=50) is None
        await budget.pause(TEAM, KEY, 5)  # no exception either
        now[0] += shared_budget.REST + 1  # asked again after its rest: still failing, not logged again
        assert await budget.take(TEAM, KEY, span=SPAN, allowed=50) is None
        await store._write("ALTER TABLE slack_budget_gone RENAME TO slack_budget", ())
        assert await budget.take(TEAM, KEY, span=SPAN, allowed=50) is None  # still resting: no round trip
        now[0] += shared_budget.REST + 1
        back = await budget.take(TEAM, KEY, span=SPAN, allowed=50)
    assert back is not None and back.granted and len(back.ages) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "slack_budget" in warnings[0].getMessage()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "the shared Slack budget answers again"
    ]


async def test_a_busy_pool_lets_the_call_go_on_the_local_budget(replicas: list[PostgresStore]) -> None:
    store = replicas[0]
    budget = SharedBudget(store.pool, timeout=0.2)
    async with store.pool.connection(), store.pool.connection():  # every connection taken
        assert await budget.take(TEAM, KEY, span=SPAN, allowed=50) is None
