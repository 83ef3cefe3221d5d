"""A PostgreSQL outage of a few seconds, staged with a proxy that does to the bot's connections what a server
restart does (all closed at once, new ones refused): no acknowledged message is lost, answers in flight keep
streaming and are saved once the database is back, and /healthz tells a balancer to send events elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import psycopg
import pytest

from tests.conftest import Harness, until
from tests.fakes import mistral as fm
from tests.fakes.pgproxy import PgProxy
from tests.fakes.slack import BOT_USER
from tests.storage.conftest import database_url  # noqa: F401 (the fixture: a fresh schema per test)

CHANNEL = "C0OUTAGE"


@pytest.fixture
async def proxy() -> AsyncIterator[PgProxy]:
    opened = PgProxy()
    await opened.start()
    yield opened
    await opened.stop()


@pytest.fixture
async def bot(
    http_harness: Harness,
    proxy: PgProxy,
    database_url: str,  # noqa: F811
) -> AsyncIterator[Harness]:
    await http_harness.start(DATABASE_URL=proxy.url(database_url))
    yield http_harness


def answers(url: str) -> list[tuple[str, str]]:
    """(status, text) of every answer, read straight from the server (not through the proxy)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status, text FROM messages WHERE role = 'assistant' ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in rows]


async def health(h: Harness) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{h.port}/healthz") as response:
        return response.status


async def test_an_answer_streaming_through_an_outage_is_finished_and_saved_once_the_database_is_back(
    bot: Harness,
    proxy: PgProxy,
    database_url: str,  # noqa: F811
) -> None:
    words = [f"word{i} " for i in range(12)]
    bot.mistral.queue(fm.Script(chunks=words, delay=0.25))
    event = bot.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Count slowly")
    await bot.deliver(bot.slack.as_mention(event))
    await until(lambda: "word1" in "".join(m.text for m in bot.slack.bot_replies(CHANNEL, event["ts"])))
    await proxy.outage(2.0)  # mid-answer: every connection is cut, and new ones refused for two seconds
    assert proxy.cut > 0
    await bot.settle(timeout=30)
    [reply] = bot.slack.bot_replies(CHANNEL, event["ts"])
    assert reply.blocks_text() == "".join(words).strip()
    assert answers(database_url) == [("complete", "".join(words))]


async def test_a_message_that_cannot_be_stored_is_refused_so_slack_sends_it_again(
    bot: Harness,
    proxy: PgProxy,
    database_url: str,  # noqa: F811
) -> None:
    assert await health(bot) == 200
    proxy.down()
    assert await health(bot) == 503  # a balancer stops sending this replica events
    event = bot.slack.as_mention(bot.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Are you there?"))
    status, _ = await bot.slack.deliver_http(bot.events_url, event)
    assert status == 500  # not acknowledged: Slack retries
    assert bot.mistral.chat_requests == []
    proxy.up()
    for _ in range(100):  # Slack retries a minute later; by then the balancer sees the replica healthy again
        if await health(bot) == 200:
            break
        await asyncio.sleep(0.1)
    await bot.deliver(event, retry=1)  # Slack's retry
    await bot.settle()
    assert [r.text for r in bot.slack.bot_replies(CHANNEL, event["ts"])] == ["You said: [Ada] Are you there?"]
    assert len(answers(database_url)) == 1


async def test_a_claim_rides_out_an_outage_shorter_than_slacks_deadline(
    bot: Harness,
    proxy: PgProxy,
    database_url: str,  # noqa: F811
) -> None:
    event = bot.slack.as_mention(bot.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Quick one"))
    outage = asyncio.create_task(proxy.outage(0.8))
    await asyncio.sleep(0.05)
    await bot.deliver(event)  # acknowledged (200) within Slack's 3 s, once the claim went through
    await outage
    await bot.settle()
    assert [r.text for r in bot.slack.bot_replies(CHANNEL, event["ts"])] == ["You said: [Ada] Quick one"]
    assert answers(database_url) == [("complete", "You said: [Ada] Quick one")]
