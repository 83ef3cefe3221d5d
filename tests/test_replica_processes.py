"""Replicas as real processes: two `python -m bot` on one PostgreSQL schema, in HTTP and in Socket Mode.

Slack may deliver a mention, its `message` twin and a retry to different replicas (different HTTP instances
behind a load balancer, or different Socket Mode connections): the message is answered once. A follow-up that
reaches the other replica continues the same conversation. Also the tools these tests stand on: the fake
Slack's several Socket Mode connections, and the proxy that stages a database outage.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from bot.slack.blocks import REGENERATE_ACTION
from tests.conftest import until
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.pgproxy import PgProxy
from tests.fakes.slack import BOT_USER, EnvelopeLost
from tests.processes import MODES, ReplicaSet
from tests.storage.conftest import database_url  # noqa: F401 (the fixture: a fresh schema per test)

CHANNEL = "C0GENERAL"


def finished(slack: fs.FakeSlack, event: dict[str, Any]) -> list[str]:
    """The texts of the bot's replies in the event's thread once the last one is a finished answer, else []."""
    replies = slack.bot_replies(CHANNEL, event.get("thread_ts") or event["ts"])
    if not replies or REGENERATE_ACTION not in replies[-1].actions():
        return []
    return [r.text for r in replies]


@pytest.mark.parametrize("mode", MODES)
async def test_a_mention_its_twin_and_a_retry_at_two_replicas_are_answered_once(
    slack: fs.FakeSlack,
    mistral: fm.FakeMistral,
    tmp_path: Path,
    database_url: str,  # noqa: F811
    mode: str,
) -> None:
    async with ReplicaSet(slack, mistral, tmp_path, mode, database_url, 2) as replicas:
        event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Name a cheese")
        await asyncio.gather(
            replicas.deliver(slack.as_mention(event), replica=0),
            replicas.deliver(event, replica=1),  # the twin, at the other replica
            replicas.deliver(slack.as_mention(event), replica=1, retry=1),  # and Slack's retry of the mention
        )
        answer = "You said: [Ada] Name a cheese"
        assert await until(lambda: finished(slack, event), 15, "the answer") == [answer]
        await asyncio.sleep(0.3)  # a second turn, had either replica started one, would have asked the model by now
        assert len(mistral.chat_requests) == 1
        assert [r.text for r in slack.bot_replies(CHANNEL, event["ts"])] == [answer]


@pytest.mark.parametrize("mode", MODES)
async def test_a_follow_up_at_the_other_replica_or_a_restarted_one_continues_the_conversation(
    slack: fs.FakeSlack,
    mistral: fm.FakeMistral,
    tmp_path: Path,
    database_url: str,  # noqa: F811
    mode: str,
) -> None:
    async with ReplicaSet(slack, mistral, tmp_path, mode, database_url, 2) as replicas:
        event = slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Name a cheese")
        await replicas.deliver(slack.as_mention(event), replica=0)
        await until(lambda: finished(slack, event), 15, "the first answer")

        follow = slack.user_message(CHANNEL, "U0BOB", "And a wine?", thread_ts=event["ts"])
        await replicas.deliver(follow, replica=1)
        answers = await until(lambda: len(finished(slack, follow)) == 2 and finished(slack, follow), 15, "the second")
        assert answers == ["You said: [Ada] Name a cheese", "You said: [Bob] And a wine?"]
        assert len(mistral.chat_requests) == 2
        sent = mistral.chat_requests[-1]["messages"]
        assert [m["content"] for m in sent[1:]] == [
            "[Ada] Name a cheese",
            "You said: [Ada] Name a cheese",
            "[Bob] And a wine?",
        ]

        # The first replica, killed and started again, carries on too: the conversation lives in the database.
        assert await replicas.kill(0) == -signal.SIGKILL
        await replicas.restart(0)
        last = slack.user_message(CHANNEL, "U0ADA", "And bread?", thread_ts=event["ts"])
        await replicas.deliver(last, replica=0)
        await until(lambda: len(finished(slack, last)) == 3, 15, "the third answer")
        assert [m["content"] for m in mistral.chat_requests[-1]["messages"][1:]][-2:] == [
            "You said: [Bob] And a wine?",
            "[Ada] And bread?",
        ]
        assert [await replicas.terminate(i) for i in range(len(replicas))] == [0, 0]


# the fake Slack's Socket Mode connections ----------------------------------------------------------------


class SocketClient:
    """A bare Socket Mode client: records envelopes; acks them, or closes its connection on the next one."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.envelopes: list[dict[str, Any]] = []
        self.close_on_next = False
        self.task = asyncio.create_task(self._serve())

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, slack: fs.FakeSlack) -> SocketClient:
        ws = await session.ws_connect(slack.url.replace("http", "ws") + "/socket")
        return cls(ws, await ws.receive_json())

    async def _serve(self) -> None:
        async for msg in self.ws:
            envelope = msg.json()
            self.envelopes.append(envelope)
            if self.close_on_next:
                await self.ws.close()
                return
            await self.ws.send_json({"envelope_id": envelope["envelope_id"]})


async def test_the_fake_spreads_envelopes_over_connections_and_redelivers_lost_ones(slack: fs.FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        a = await SocketClient.connect(session, slack)
        b = await SocketClient.connect(session, slack)
        await slack.socket_connected(count=2)
        assert (a.hello["num_connections"], b.hello["num_connections"]) == (1, 2)
        assert slack.socket_connections == [0, 1]

        for i in range(4):
            await slack.deliver_socket(slack.user_message(CHANNEL, "U0ADA", f"hi {i}"))
        assert [s.connection for s in slack.socket_sends] == [0, 1, 0, 1]
        assert len(a.envelopes) == len(b.envelopes) == 2

        await slack.deliver_socket(slack.user_message(CHANNEL, "U0ADA", "to a"))  # round robin: a's turn
        b.close_on_next = True
        lost = slack.user_message(CHANNEL, "U0ADA", "lost on b")
        ack = await slack.deliver_socket(lost)  # b closes without an ack: Slack redelivers on a
        assert ack["envelope_id"] == a.envelopes[-1]["envelope_id"]
        assert b.envelopes[-1]["payload"]["event"]["ts"] == a.envelopes[-1]["payload"]["event"]["ts"] == lost["ts"]
        assert (a.envelopes[-1]["retry_attempt"], a.envelopes[-1]["retry_reason"]) == (1, "timeout")
        assert slack.socket_connections == [0]

        with pytest.raises(EnvelopeLost):  # a connection that is gone
            await slack.deliver_socket(slack.user_message(CHANNEL, "U0ADA", "to b"), connection=1)
        a.close_on_next = True
        with pytest.raises(EnvelopeLost):  # a named connection closing before its ack: the caller decides
            await slack.deliver_socket(slack.user_message(CHANNEL, "U0ADA", "to a, lost"), connection=0)
        await until(lambda: not slack.socket_connections, 5, "no connection left")
        await asyncio.gather(a.task, b.task)


# the database proxy --------------------------------------------------------------------------------------


async def test_the_database_proxy_cuts_and_refuses_connections_while_down(database_url: str) -> None:  # noqa: F811
    proxy = PgProxy()
    await proxy.start()
    try:
        url = proxy.url(database_url)
        assert f"127.0.0.1:{proxy.port}/test?options=" in url
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
        try:
            schema = database_url.rsplit("%3D", 1)[-1]
            assert await (await conn.execute("SELECT current_schema()")).fetchone() == (schema,)
            assert proxy.connections == 1
            proxy.down()  # as a server restart: the open connection breaks
            with pytest.raises(psycopg.OperationalError):
                await conn.execute("SELECT 1")
        finally:
            await conn.close()
        with pytest.raises(psycopg.OperationalError):  # and new ones are refused while it is down
            await psycopg.AsyncConnection.connect(url, connect_timeout=5)
        assert proxy.refused >= 1

        proxy.up()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5) as again:
            assert await (await again.execute("SELECT 1")).fetchone() == (1,)

        outage = asyncio.create_task(proxy.outage(0.3))
        await asyncio.sleep(0)
        assert proxy.is_down and proxy.connections == 0
        await outage
        assert not proxy.is_down
    finally:
        await proxy.stop()


# the fake Mistral's `prefix` -------------------------------------------------------------------------------


async def streamed(mistral: fm.FakeMistral, messages: list[dict[str, Any]]) -> str:
    """The content the fake streams for `messages`."""
    body = {"model": "mistral-large-latest", "messages": messages, "stream": True}
    headers = {"Authorization": f"Bearer {fm.API_KEY}"}
    text = ""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{mistral.url}/v1/chat/completions", json=body, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        async for line in response.content:
            data = line.decode().strip().removeprefix("data: ")
            if data and data != "[DONE]":
                text += json.loads(data)["choices"][0]["delta"].get("content") or ""
    return text


async def test_the_fake_model_begins_its_answer_with_the_prefix(mistral: fm.FakeMistral) -> None:
    question = [{"role": "user", "content": "Name a cheese"}]
    whole = await streamed(mistral, question)
    assert whole == "You said: Name a cheese" and not mistral.prefixed_requests

    def prefixed(prefix: str) -> list[dict[str, Any]]:
        return [*question, {"role": "assistant", "content": prefix, "prefix": True}]

    # Part of its own answer as the prefix: the continued answer is the uninterrupted one.
    assert await streamed(mistral, prefixed("You said: Na")) == whole
    assert await streamed(mistral, prefixed("Sure! ")) == "Sure! " + whole
    mistral.queue(fm.Script(chunks=["Brie."]), fm.Script(chunks=["Sure", "! Brie."]))
    assert await streamed(mistral, prefixed("Sure! ")) == "Sure! Brie."  # the prefix sent first
    assert await streamed(mistral, prefixed("Sure! ")) == "Sure! Brie."  # the chunks had it already
    assert [fm.prefix_of(r) for r in mistral.prefixed_requests] == ["You said: Na", "Sure! ", "Sure! ", "Sure! "]
