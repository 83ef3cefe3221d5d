"""The "Summarize thread" message shortcut end to end: the thread is read once from Slack, the summary is
answered in it as a new conversation, and people are told privately when the bot cannot read the thread."""

from __future__ import annotations

from bot.summaries import CANNOT_READ, PARTLY_READ, RATE_LIMITED, SUMMARY_REQUEST, after
from tests.conftest import Harness, until
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER

CHANNEL = "C0TEAM"


def private_notes(h: Harness) -> list[str]:
    return [str(p.get("text")) for p in h.slack.response_url_posts(response_type="ephemeral")]


def a_thread(h: Harness) -> tuple[str, list[dict]]:
    """A discussion the bot took no part in: a question and two replies."""
    root = h.slack.user_message(CHANNEL, "U0ADA", "Should we ship on Friday?")
    replies = [
        h.slack.user_message(CHANNEL, "U0BOB", "Only if the migration is tested.", thread_ts=root["ts"]),
        h.slack.user_message(CHANNEL, "U0ADA", "Bob owns the test; we decide Thursday.", thread_ts=root["ts"]),
    ]
    return root["ts"], [root, *replies]


async def test_a_summary_is_answered_in_the_thread_and_takes_follow_ups(harness: Harness) -> None:
    h = harness
    await h.start()
    thread_ts, messages = a_thread(h)
    h.mistral.queue(Script(chunks=["Ship ", "Friday ", "if tested."]))
    shortcut = h.slack.message_shortcut("U0BOB", CHANNEL, messages[1]["ts"], thread_ts, "summarize_thread")
    await h.interact(shortcut)
    await until(lambda: h.slack.bot_replies(CHANNEL, thread_ts), message="a summary in the thread")
    await h.settle()

    [summary] = h.slack.bot_replies(CHANNEL, thread_ts)
    assert summary.blocks_text() == "Ship Friday if tested."
    sent = h.mistral.chat_requests[0]["messages"]
    # The people's messages in order, then the request (consecutive user turns are sent as one).
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[1]["content"] == "\n\n".join(
        [
            "[Ada] Should we ship on Friday?",
            "[Bob] Only if the migration is tested.",
            "[Ada] Bob owns the test; we decide Thursday.",
            f"[Bob] {SUMMARY_REQUEST}",
        ]
    )
    assert len(h.slack.calls_to("conversations.replies")) == 1

    follow = h.slack.user_message(CHANNEL, "U0ADA", "Who decides?", thread_ts=thread_ts)  # no mention needed
    await h.deliver(follow)
    await h.settle()
    assert len(h.mistral.chat_requests) == 2
    assert h.mistral.chat_requests[1]["messages"][-2] == {"role": "assistant", "content": "Ship Friday if tested."}
    assert len(h.slack.calls_to("conversations.replies")) == 1  # the thread was read once


async def test_a_thread_the_bot_cannot_read_gets_a_private_note(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    thread_ts, messages = a_thread(h)
    h.slack.not_in_channel.add(CHANNEL)
    await h.interact(h.slack.message_shortcut("U0ADA", CHANNEL, messages[0]["ts"], None, "summarize_thread"))
    assert await until(lambda: CANNOT_READ["not_in_channel"] in private_notes(h), message="a private note")
    assert h.mistral.chat_requests == [] and h.slack.bot_replies(CHANNEL, thread_ts) == []


async def test_slacks_one_read_a_minute_is_explained_not_queued(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    thread_ts, messages = a_thread(h)
    h.slack.limit_thread_history(calls=1, window=60.0)
    h.slack.retry_after = 60
    await h.interact(h.slack.message_shortcut("U0ADA", CHANNEL, messages[0]["ts"], None, "summarize_thread"))
    await until(lambda: h.slack.bot_replies(CHANNEL, thread_ts), message="the first summary")
    await h.settle()
    await h.interact(h.slack.message_shortcut("U0BOB", CHANNEL, messages[2]["ts"], thread_ts, "summarize_thread"))
    assert await until(lambda: RATE_LIMITED in private_notes(h), message="a private note")
    await h.settle()
    assert len(h.mistral.chat_requests) == 1


async def test_a_malformed_shortcut_is_acknowledged_and_ignored(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    shortcut = h.slack.message_shortcut("U0ADA", CHANNEL, "1700000001.000100", None, "summarize_thread")
    for broken in ({**shortcut, "message": "gone"}, {**shortcut, "channel": {}}, {**shortcut, "user": None}):
        await h.interact(broken)
    await h.settle()
    assert h.slack.calls_to("conversations.replies") == [] and private_notes(h) == []


def test_after_is_one_microsecond_later_exactly() -> None:
    assert after("1700000001.000100") == "1700000001.000101"
    assert after("1700000001.999999") == "1700000002.000000"
    assert after("1700000001") == "1700000001.000001"


def test_the_summary_request_mentions_no_one() -> None:
    assert f"<@{BOT_USER}>" not in SUMMARY_REQUEST


async def test_a_long_thread_read_in_part_says_so_privately(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    root = h.slack.user_message(CHANNEL, "U0ADA", "Long discussion")
    for i in range(20):
        h.slack.user_message(CHANNEL, "U0BOB", f"point {i}", thread_ts=root["ts"])
    h.slack.limit_thread_history(calls=1, window=60.0, max_messages=15)  # an app outside the Marketplace
    await h.interact(h.slack.message_shortcut("U0ADA", CHANNEL, root["ts"], None, "summarize_thread"))
    await until(lambda: h.slack.bot_replies(CHANNEL, root["ts"]), message="a summary")
    await h.settle()
    assert PARTLY_READ.format(count=15) in private_notes(h)


async def test_a_summary_in_a_thread_the_bot_is_in_adds_only_what_it_missed(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    question = h.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> Name a cheese")
    await h.deliver(h.slack.as_mention(question))
    await h.settle()
    # Someone wrote in the thread while the bot was away (no event reached it).
    h.slack.user_message(CHANNEL, "U0BOB", "I prefer wine.", thread_ts=question["ts"])
    shortcut = h.slack.message_shortcut("U0BOB", CHANNEL, question["ts"], None, "summarize_thread")
    await h.interact(shortcut)
    await until(lambda: len(h.mistral.chat_requests) == 2, message="the summary's request")
    await h.settle()
    sent = h.mistral.chat_requests[1]["messages"]
    answers = [m["content"] for m in sent if m["role"] == "assistant"]
    assert answers == ["You said: [Ada] Name a cheese"]  # the bot's answer once, from its own store
    assert "[Bob] I prefer wine." in sent[-1]["content"]
