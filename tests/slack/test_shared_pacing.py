"""Replicas of the bot pacing one workspace's Slack calls through the budget they share in PostgreSQL: together
they stay within Slack's tiers, a 429 one of them meets pauses them all, and finals are reserved for every
replica's answers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.pacing import CallBudget, Limit
from bot.slack.api import RateLimited, SlackApi
from bot.slack.pacer import Pacer
from bot.slack.writers import Writers
from bot.storage.postgres import PostgresStore
from bot.storage.shared_budget import SharedBudget
from tests.fakes import slack as fs
from tests.storage.conftest import database_url  # noqa: F401 (the fixture: a fresh schema per test)

TEAM = fs.TEAM
KEY = "chat.update"
THREAD = "1700000000.000100"

OpenReplicas = Callable[[int], Awaitable[list[SharedBudget]]]


@pytest.fixture
async def shared(database_url: str) -> AsyncIterator[OpenReplicas]:  # noqa: F811
    """`await shared(n)`: n shared budgets on one database, each on a pool of its own (n replicas)."""
    async with AsyncExitStack() as stack:

        async def open_replicas(n: int) -> list[SharedBudget]:
            budgets = []
            for _ in range(n):
                store = await PostgresStore.open(database_url, pool_size=2)
                stack.push_async_callback(store.close)
                budgets.append(SharedBudget(store.pool))
            return budgets

        yield open_replicas


def most_in_any_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


async def take_all(pacers: list[Pacer], calls_each: int) -> list[float]:
    """Every pacer's calls at once; when each slot was handed out."""
    granted: list[float] = []

    async def take(pacer: Pacer) -> None:
        await pacer.acquire(KEY, urgent=True)
        granted.append(time.monotonic())

    await asyncio.gather(*(take(pacer) for pacer in pacers for _ in range(calls_each)))
    return granted


async def test_replicas_together_stay_within_the_window(shared: OpenReplicas) -> None:
    limit = Limit(3, 0.3)  # a call counts for 0.8 s with the edge margin
    budgets = await shared(3)
    pacers = [Pacer(CallBudget({KEY: limit}), shared=budget, team_id=TEAM) for budget in budgets]
    granted = await take_all(pacers, 4)
    assert len(granted) == 12
    assert most_in_any_window(granted, limit.window) <= 3

    # The same replicas pacing alone would each have spent the whole window at once.
    alone = [Pacer(CallBudget({KEY: limit})) for _ in range(3)]
    assert most_in_any_window(await take_all(alone, 3), limit.window) == 9


async def test_a_429_one_replica_meets_pauses_the_key_for_every_replica(
    slack: fs.FakeSlack, shared: OpenReplicas
) -> None:
    slack.limits = {KEY: (1, 30.0)}  # Slack allows less than the pacers think: the second call meets a 429
    slack.retry_after = 2
    budgets = await shared(2)
    async with aiohttp.ClientSession() as session:
        a, b = (
            SlackApi(AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url, session=session), shared=budget)
            for budget in budgets
        )
        posted = await a.post(TEAM, "C0PAUSE", "hello")
        for _ in range(2):
            try:
                await a.call(TEAM, KEY, retry_rate_limited=False, channel="C0PAUSE", ts=posted["ts"], text="hi")
            except RateLimited:
                pass
        assert slack.rate_limited == 1
        # The other replica has never called chat.update, nor met a 429: the shared budget pauses it.
        assert not await b.pacer(TEAM).slot_within(KEY, seconds=1.0)
        assert slack.rate_limited == 1 and len(slack.calls_to(KEY)) == 2
        assert 0 < b.pacer(TEAM).budget.wait_time(KEY, b.pacer(TEAM).now()) <= 2.0
        assert b.pacer(TEAM).budget.limit(KEY) == Limit(50, 60.0)  # a pause heard of is no lesson learned


async def test_intermediate_calls_leave_room_for_every_replicas_finals(shared: OpenReplicas) -> None:
    a_budget, b_budget = await shared(2)
    a = Pacer(CallBudget({KEY: Limit(6, 60.0)}), shared=a_budget, team_id=TEAM)
    b = Pacer(CallBudget({KEY: Limit(6, 60.0)}), shared=b_budget, team_id=TEAM)
    a.answers_in_flight = 3  # replica a writes three answers, each owed a final update
    await a.acquire(KEY, urgent=False)  # 3 reserved: a's intermediate call may fill the window up to 3
    await b.acquire(KEY, urgent=True)  # b hears what a's answers are owed
    assert b.owed_elsewhere(KEY, b.now()) == 3
    await b.acquire(KEY, urgent=False)  # the window's third call: the last one intermediates may take
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await b.acquire(KEY, urgent=False)  # b has no answer of its own, yet keeps a's finals' slots
    for _ in range(3):
        await a.acquire(KEY, urgent=True)  # a's three finals
    assert b.budget.used(KEY, b.now()) == 3  # b has not heard of them yet: it learns at its next call
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await b.acquire(KEY, urgent=True)  # the window is full, whoever asks
    assert b.budget.used(KEY, b.now()) == 6


async def test_a_database_outage_leaves_every_call_on_the_local_budget(
    database_url: str,  # noqa: F811
) -> None:
    store = await PostgresStore.open(database_url, pool_size=1)
    budget = SharedBudget(store.pool)
    await store.close()  # the database is gone
    pacer = Pacer(CallBudget({KEY: Limit(2, 60.0)}), shared=budget, team_id=TEAM)
    for _ in range(2):
        await pacer.acquire(KEY, urgent=True)
    assert pacer.budget.used(KEY, pacer.now()) == 2  # counted locally, as a single process would
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await pacer.acquire(KEY, urgent=True)
    await pacer.rate_limited(KEY, 1.0)  # no exception either


async def test_24_answers_over_3_replicas_draw_no_429_from_a_slack_enforcing_the_tiers(
    slack: fs.FakeSlack, shared: OpenReplicas
) -> None:
    # Slack's own tiers (bot.core.pacing.DEFAULT_LIMITS): chat.update 50 a minute per workspace, and
    # chat.postMessage about one a second per channel. Each replica alone would spend the 50 on its own answers.
    slack.limits = {"chat.update": (50, 60.0), "chat.delete": (50, 60.0), "assistant.threads.setStatus": (100, 60.0)}
    slack.channel_limits = {"chat.postMessage": (10, 10.0)}
    budgets = await shared(3)
    words = [f"word{i} " for i in range(30)]
    async with aiohttp.ClientSession() as session:
        factories = [
            Writers(
                SlackApi(AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url, session=session), shared=budget),
                mode="update",
                min_interval=0.05,
            )
            for budget in budgets
        ]
        numbers = itertools.count(1)

        async def answer(writers: Writers) -> None:
            n = next(numbers)
            w = writers.new(TEAM, f"C0Q{n}", THREAD, recipient_user_id="U0ADA", answer_id=n)
            await w.start()
            for word in words:
                w.append(word)
                await asyncio.sleep(0.01)
            await w.finish()

        await asyncio.gather(*(answer(writers) for writers in factories for _ in range(8)))
        for writers in factories:
            await writers.close(grace=10)
    assert slack.rate_limited == 0
    expected = "".join(words).split()
    for n in range(1, 25):  # every answer complete
        assert " ".join(m.text for m in slack.bot_replies(f"C0Q{n}", THREAD)).split() == expected
    assert len(slack.calls_to("chat.update")) <= 50  # the first minute's chat.update, every replica's together
