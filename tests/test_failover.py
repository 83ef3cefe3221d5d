"""Replicas as real `python -m bot` processes on one PostgreSQL database: a replica killed mid-answer has its
answer finished by another; a rolling restart (SIGTERM to each replica in turn while questions keep coming)
answers every question once, with nothing lost or shown twice; three replicas share Slack's rate budget; a
thread's turns on different replicas stay in order; answers stream on through a database restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from tests.conftest import until
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.pgproxy import PgProxy
from tests.fakes.slack import BOT_USER
from tests.processes import ReplicaSet
from tests.storage.conftest import database_url  # noqa: F401 (the fixture: a fresh schema per test)

CHANNEL = "C0FAILOVER"
# Leases of four seconds, renewed and swept every 1.3 s: a dead replica's answers are taken over within ~6 s,
# and a live one survives a stall of over 2 s (two cores shared by the test, the fakes and every replica).
FAST_LEASES = {"ANSWER_LEASE_SECONDS": "4"}


def answers(url: str) -> list[tuple[str, str]]:
    """(status, text) of every answer, oldest first, as the database has them."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status, text FROM messages WHERE role = 'assistant' ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in rows]


def answer_parts(url: str) -> str:
    """The Slack messages the first answer spans, as the database has them (a JSON list)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT slack_parts FROM messages WHERE role = 'assistant' ORDER BY id").fetchone()
    return str(row[0]) if row else "[]"


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_replica_killed_mid_answer_has_its_answer_finished_by_another(
    slack: fs.FakeSlack,
    mistral: fm.FakeMistral,
    tmp_path: Path,
    database_url: str,  # noqa: F811
    mode: str,
) -> None:
    async with ReplicaSet(slack, mistral, tmp_path, mode, database_url, 2, **FAST_LEASES) as replicas:
        mistral.queue(
            fm.Script(chunks=["Once upon ", "a time", " there was"], hang_after=2),
            # The model continues what was shown: its answer to the prefixed request starts with that text.
            fm.Script(chunks=[", a cheese", " that travelled."]),
        )
        event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Tell me a story")
        await replicas.deliver(slack.as_mention(event), replica=0)
        await until(
            lambda: any("Once upon a time" in m.text for m in slack.bot_replies(CHANNEL, event["ts"])),
            timeout=20,
            message="the first part of the answer in Slack",
        )
        # Killed once the store knows the message: a process killed between Slack's answer to its post and the
        # save of that message's ts leaves a message nobody can find again (a known gap, not what this tests).
        await until(lambda: answer_parts(database_url) != "[]", timeout=5, message="the message's ts in the store")
        assert await replicas.kill(0) == -9
        await until(lambda: answers(database_url)[-1][0] == "complete", timeout=30, message="the answer to finish")

        [reply] = slack.bot_replies(CHANNEL, event["ts"])  # one answer, in the message the first replica posted
        assert reply.blocks_text() == "Once upon a time, a cheese that travelled."
        assert answers(database_url) == [("complete", "Once upon a time, a cheese that travelled.")]
        [continued] = mistral.prefixed_requests
        assert continued["messages"][-1] == {"role": "assistant", "content": "Once upon a time", "prefix": True}
        # Every text the message ever showed is a start of the final one: nothing was shown twice, or taken back.
        final = reply.blocks_text()
        assert all(final.startswith(shown.rstrip(" ▍").rstrip()) for shown in reply.history if "Once" in shown)


async def test_a_rolling_restart_answers_every_question_once(
    slack: fs.FakeSlack,
    mistral: fm.FakeMistral,
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    mistral.chunk_size = 6
    mistral.default_delay = 0.25  # about two seconds an answer: some are in flight at every SIGTERM
    env = {**FAST_LEASES, "SHUTDOWN_GRACE_SECONDS": "0.5"}
    async with ReplicaSet(slack, mistral, tmp_path, "http", database_url, 2, **env) as replicas:
        questions: list[dict] = []
        up = [True, True]

        async def ask(i: int) -> None:
            event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Question number {i}")
            questions.append(event)
            # The balancer sends it to a replica that is up; Slack retries what was not acknowledged.
            for target in (i % 2, 1 - i % 2) * 3:
                if up[target]:
                    try:
                        await replicas.deliver(slack.as_mention(event), replica=target)
                        return
                    except (AssertionError, OSError):
                        pass
                await asyncio.sleep(0.3)
            raise AssertionError(f"question {i} could not be delivered")

        async def keep_asking() -> None:
            for i in range(16):
                await ask(i)
                await asyncio.sleep(0.4)

        asking = asyncio.create_task(keep_asking())
        for index in (0, 1):  # each replica in turn: stopped (SIGTERM), then started again
            await asyncio.sleep(1.5)
            up[index] = False
            assert await replicas.terminate(index) == 0
            await replicas.restart(index)
            up[index] = True
        await asking

        expected = {e["ts"]: f"You said: [Ada] Question number {i}" for i, e in enumerate(questions)}
        await until(
            lambda: all([r.text for r in slack.bot_replies(CHANNEL, ts)] == [text] for ts, text in expected.items()),
            timeout=60,
            message="every question answered once",
        )
        await until(
            lambda: [s for s, _ in answers(database_url)] == ["complete"] * len(expected),
            timeout=30,
            message="every answer stored complete",
        )
        assert sorted(t for _, t in answers(database_url)) == sorted(expected.values())
        # Answers were in flight at each SIGTERM, and were continued by the other replica, not restarted.
        assert len(mistral.prefixed_requests) >= 2, replicas.logs()
        assert replicas.logs().count("handed answer") >= 2


# Slack's documented limits, enforced by the fake with 429 + Retry-After (as bench/common.py's TIERS).
TIERS = {
    "chat.update": (50, 60.0),
    "chat.delete": (50, 60.0),
    "chat.startStream": (20, 60.0),
    "chat.stopStream": (20, 60.0),
    "chat.appendStream": (100, 60.0),
    "users.info": (100, 60.0),
}


@pytest.mark.parametrize("streaming", ["update", "auto"])
async def test_replicas_share_one_slack_budget(
    slack: fs.FakeSlack,
    mistral: fm.FakeMistral,
    tmp_path: Path,
    database_url: str,  # noqa: F811
    streaming: str,
) -> None:
    """24 questions at once over 3 replicas: each replica alone would think Slack's whole budget its own."""
    slack.limits = dict(TIERS)
    slack.channel_limits = {"chat.postMessage": (10, 10.0)}
    mistral.chunk_size = 8
    mistral.default_delay = 0.12  # about 2 s an answer: several intermediate updates each
    env = {"SLACK_STREAMING": streaming, "LOG_LEVEL": "WARNING"}
    async with ReplicaSet(slack, mistral, tmp_path, "http", database_url, 3, **env) as replicas:
        events = [
            slack.user_message(f"C0BURST{i % 8}", "U0ADA", f"<@{BOT_USER}> Question {i} about budgets")
            for i in range(24)
        ]
        await asyncio.gather(*(replicas.deliver(slack.as_mention(e), replica=i % 3) for i, e in enumerate(events)))

        def shown(event: dict) -> list[str]:
            """What the thread shows of its answer (a native stream's close may come later: Tier 2)."""
            return [r.text.replace("▍", "").strip() for r in slack.bot_replies(event["channel"], event["ts"])]

        expected = {e["ts"]: [f"You said: [Ada] Question {i} about budgets"] for i, e in enumerate(events)}
        await until(
            lambda: all(shown(e) == expected[e["ts"]] for e in events),
            timeout=30,  # far less than a minute: no answer waited for a rate window to free up
            message="every answer complete",
        )
    assert slack.rate_limited == 0
    assert len(mistral.chat_requests) == 24


async def test_turns_of_one_thread_on_different_replicas_answer_in_order(
    slack: fs.FakeSlack,
    mistral: fm.FakeMistral,
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    async with ReplicaSet(slack, mistral, tmp_path, "http", database_url, 2) as replicas:
        mistral.queue(fm.Script(chunks=["Brie, ", "then ", "Comté."], delay=0.4))
        event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Name two cheeses")
        await replicas.deliver(slack.as_mention(event), replica=0)
        await until(lambda: slack.bot_replies(CHANNEL, event["ts"]), timeout=20, message="the first answer")
        follow = slack.user_message(CHANNEL, "U0BOB", "And a wine?", thread_ts=event["ts"])
        await replicas.deliver(follow, replica=1)  # while replica 0 is still writing the first answer
        await until(lambda: [s for s, _ in answers(database_url)] == ["complete", "complete"], timeout=20)
        second = mistral.chat_requests[1]["messages"]
        assert [m["content"] for m in second[1:]] == [
            "[Ada] Name two cheeses",
            "Brie, then Comté.",  # the whole answer before it, written by the other replica
            "[Bob] And a wine?",
        ]
        assert [r.text for r in slack.bot_replies(CHANNEL, event["ts"])] == [
            "Brie, then Comté.",
            "You said: [Bob] And a wine?",
        ]


async def test_answers_streaming_through_a_database_restart_are_finished_and_saved(
    slack: fs.FakeSlack,
    mistral: fm.FakeMistral,
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    proxy = PgProxy()
    await proxy.start()
    try:
        mistral.chunk_size = 6
        mistral.default_delay = 0.25
        async with ReplicaSet(slack, mistral, tmp_path, "http", proxy.url(database_url), 2) as replicas:
            events = [slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Question {i}") for i in range(4)]
            for i, event in enumerate(events):
                await replicas.deliver(slack.as_mention(event), replica=i % 2)
            await until(lambda: all(slack.bot_replies(CHANNEL, e["ts"]) for e in events), timeout=20)
            await proxy.outage(2.0)  # every connection cut mid-answer, new ones refused for two seconds
            expected = [f"You said: [Ada] Question {i}" for i in range(4)]
            await until(
                lambda: (
                    [[r.text for r in slack.bot_replies(CHANNEL, e["ts"])] for e in events]
                    == [[text] for text in expected]
                ),
                timeout=30,
                message="every answer complete in Slack",
            )
            await until(
                lambda: sorted(answers(database_url)) == [("complete", text) for text in expected],
                timeout=30,
                message="every answer saved once the database is back",
            )
        assert proxy.cut > 0
    finally:
        await proxy.stop()
