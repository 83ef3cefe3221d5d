"""Two bots on one PostgreSQL database, as replicas behind a load balancer (issue 11, its first part): Slack
may deliver a mention, its `message` twin and a retry to different replicas, and the message is answered once;
a follow-up that reaches the other replica continues the same conversation."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import Harness
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.slack import BOT_USER
from tests.storage.conftest import database_url  # noqa: F401 (the fixture: a fresh schema per test)

CHANNEL = "C0GENERAL"


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
