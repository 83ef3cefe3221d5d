"""Two bots on one PostgreSQL database, as replicas behind a load balancer (issue 11, its first part): Slack
may deliver a mention, its `message` twin and a retry to different replicas, and the message is answered once;
a follow-up that reaches the other replica continues the same conversation."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import Harness, until
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.slack import BOT_USER
from tests.storage.conftest import database_url  # noqa: F401 (the fixture: a fresh schema per test)

CHANNEL = "C0GENERAL"


async def started(
    slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path, url: str, **env: str
) -> list[Harness]:
    """Two replicas on the database at `url`, each sweeping for lapsed answers every 1.3 s (a live answer's lease
    survives a stall of over 2 s: both replicas, the fakes and the test share this process)."""
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        replica = Harness(slack, mistral, tmp_path / name, "http")
        await replica.start(DATABASE_URL=url, ANSWER_LEASE_SECONDS="4", **env)
        replicas.append(replica)
    return replicas


async def test_replicas_answer_each_message_once_and_share_the_conversation(
    slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path, database_url: str  # noqa: F811
) -> None:
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        replicas.append(Harness(slack, mistral, tmp_path / name, "http"))
    a, b = replicas
    try:
        for replica in replicas:
            await replica.start(DATABASE_URL=database_url)
        event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Name a cheese")
        await asyncio.gather(
            a.deliver(slack.as_mention(event)),
            b.deliver(event),  # the twin, at the other replica
            b.deliver(slack.as_mention(event), retry=1),  # and Slack's retry of the mention
        )
        for replica in replicas:
            await replica.settle()
        assert len(mistral.chat_requests) == 1
        assert [r.text for r in slack.bot_replies(CHANNEL, event["ts"])] == ["You said: [Ada] Name a cheese"]

        follow = slack.user_message(CHANNEL, "U0BOB", "And a wine?", thread_ts=event["ts"])
        await b.deliver(follow)
        await b.settle()
        sent = mistral.chat_requests[-1]["messages"]
        assert [m["content"] for m in sent[1:]] == [
            "[Ada] Name a cheese",
            "You said: [Ada] Name a cheese",
            "[Bob] And a wine?",
        ]
    finally:
        for replica in replicas:
            await replica.stop()


async def test_turns_of_one_thread_stay_in_order_across_replicas(
    slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path, database_url: str  # noqa: F811
) -> None:
    a, b = await started(slack, mistral, tmp_path, database_url)
    try:
        mistral.queue(fm.Script(chunks=["Brie, ", "then ", "Comté."], delay=0.3))
        event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Name two cheeses")
        await a.deliver(slack.as_mention(event))
        await until(lambda: slack.bot_replies(CHANNEL, event["ts"]), message="the first answer to start")
        follow = slack.user_message(CHANNEL, "U0BOB", "And a wine?", thread_ts=event["ts"])
        await b.deliver(follow)  # while the first answer is still being written, on the other replica
        for replica in (a, b):
            await replica.settle()
        _, second = mistral.chat_requests
        assert [m["content"] for m in second["messages"][1:]] == [
            "[Ada] Name two cheeses",
            "Brie, then Comté.",  # the whole answer before it, not a part or nothing
            "[Bob] And a wine?",
        ]
        assert [r.text for r in slack.bot_replies(CHANNEL, event["ts"])] == [
            "Brie, then Comté.",
            "You said: [Bob] And a wine?",
        ]
    finally:
        for replica in (a, b):
            await replica.stop()


async def test_a_stopping_replica_hands_its_answer_over_and_another_finishes_it(
    slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path, database_url: str  # noqa: F811
) -> None:
    a, b = await started(slack, mistral, tmp_path, database_url, SHUTDOWN_GRACE_SECONDS="0.3")
    try:
        mistral.queue(fm.Script(chunks=["Half an ans", "wer", " never"], hang_after=2))
        event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> A long story, please")
        await a.deliver(slack.as_mention(event))
        await until(
            lambda: any("Half an answer" in m.text for m in slack.bot_replies(CHANNEL, event["ts"])),
            message="the first half in Slack",
        )
        mistral.queue(fm.Script(chunks=["Half an answer", ", and the rest."]))
        await a.stop()  # SIGTERM: past the grace period the answer is handed over, with no note
        await until(lambda: len(mistral.chat_requests) == 2, message="the other replica to take it over")
        await b.settle()
        [reply] = slack.bot_replies(CHANNEL, event["ts"])
        assert reply.blocks_text() == "Half an answer, and the rest."
        assert not any("restart" in text.lower() for text in reply.history)
        assert mistral.chat_requests[1]["messages"][-1] == {
            "role": "assistant",
            "content": "Half an answer",
            "prefix": True,
        }
    finally:
        for replica in (a, b):
            await replica.stop()
