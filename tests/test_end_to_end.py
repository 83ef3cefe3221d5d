"""The bot end to end: real Bolt, slack_sdk and httpx against loopback fakes of Slack and Mistral."""

from __future__ import annotations

from tests.conftest import Harness, until
from tests.fakes.slack import BOT_USER

CHANNEL = "C0GENERAL"


async def test_mention_gets_a_streamed_answer_in_its_thread(harness: Harness) -> None:
    await harness.start()
    harness.mistral.queue(__import__("tests.fakes.mistral", fromlist=["Script"]).Script(
        chunks=["Brie ", "is **soft**", " and `mild`."], delay=0.05))
    event = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> best cheese?")
    await harness.deliver(harness.slack.as_mention(event))
    await harness.deliver(event)  # the same mention, delivered as a message event too
    await harness.settle()
    replies = harness.slack.bot_replies(CHANNEL, event["ts"])
    assert [r.text for r in replies] == ["Brie is *soft* and `mild`."]
    assert replies[0].thread_ts == event["ts"]
    assert len(harness.mistral.chat_requests) == 1
    sent = harness.mistral.chat_requests[0]["messages"]
    assert sent[0]["role"] == "system"
    assert sent[-1] == {"role": "user", "content": "[Ada] best cheese?"}
