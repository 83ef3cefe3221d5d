"""Long answers through the real bot and a Slack with real limits: every word shown once, in order.

A streamed message holds 12,000 characters of Markdown in all and expires about five minutes after it
starts; a chat.update message holds about 4,000. Answers longer than that continue in new messages.
"""

from __future__ import annotations

import re

import pytest

from bot.slack import writers
from tests.conftest import Harness
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER, FakeSlack, Message

CHANNEL = "C0LONG"


def numbered_words(count: int) -> list[str]:
    return [f"w{i:05d}" for i in range(1, count + 1)]


def long_answer(words: list[str]) -> str:
    """Words with lines every 12 words and paragraphs every 60, so cuts have somewhere to go."""
    text = ""
    for i, word in enumerate(words):
        text += word
        if i + 1 < len(words):
            text += "\n\n" if (i + 1) % 60 == 0 else "\n" if (i + 1) % 12 == 0 else " "
    return text


def chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def paced(text: str, *, fast: int) -> list[str]:
    """Model chunks (one every 0.03 s): the first `fast` characters in bursts, so streams fill up and end at
    their size limit; the rest at about 1,000 characters a second, so a stream would outlive Slack's expiry
    before it filled (most chunks end mid-word, as a model's do)."""
    return chunks(text[:fast], 1_000) + chunks(text[fast:], 30)


def ask(h: Harness, text: str) -> dict:
    return h.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> {text}")


def seen_words(slack: FakeSlack, thread_ts: str) -> list[str]:
    """Every numbered word in the thread's bot replies, as people read them at the end, in order."""
    return re.findall(r"w\d{5}", "\n".join(m.text for m in slack.bot_replies(CHANNEL, thread_ts)))


def assert_within_limits(slack: FakeSlack, replies: list[Message]) -> None:
    for reply in replies:
        limit = slack.stream_limit if reply.stream_started else slack.update_limit
        assert len(reply.text) <= limit, (reply.ts, len(reply.text))


@pytest.mark.parametrize("mode", ["update", "native", "auto"])
async def test_a_56000_character_answer_shows_every_word_once_in_order(
    http_harness: Harness, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    h = http_harness
    # Slack's five minutes and the bot's four, scaled down: the slow part of the answer outlives a stream.
    h.slack.stream_ttl = 4.0
    monkeypatch.setattr(writers, "STREAM_MAX_AGE", 2.0)  # the writer updates about once a second
    await h.start(SLACK_STREAMING=mode)
    words = numbered_words(8_000)
    text = long_answer(words)
    assert len(text) >= 56_000
    h.mistral.queue(Script(chunks=paced(text, fast=46_000), delay=0.03))
    event = ask(h, "tell me everything")
    await h.deliver(h.slack.as_mention(event))
    await h.settle(timeout=120)
    await h.stop()  # streams still closing are stopped
    replies = h.slack.bot_replies(CHANNEL, event["ts"])
    assert seen_words(h.slack, event["ts"]) == words
    assert_within_limits(h.slack, replies)
    assert not any(m.streaming for m in replies)
    if mode != "update":
        assert all(m.stream_started for m in replies)  # it kept streaming, message after message
        assert len(replies) >= 7  # 56,000 characters at 9,000 or so a message, and rollovers in the slow part
    assert not any(c.error for c in h.slack.calls)  # no stream refused, expired or updated while streaming


async def test_an_expiring_stream_rolls_over_to_a_new_streamed_message(
    http_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = http_harness
    h.slack.stream_ttl = 3.0
    monkeypatch.setattr(writers, "STREAM_MAX_AGE", 1.5)  # the writer updates about once a second
    await h.start(SLACK_STREAMING="native")
    words = numbered_words(800)
    h.mistral.queue(Script(chunks=chunks(long_answer(words), 40), delay=0.03))  # about 4.5 s of streaming
    event = ask(h, "slowly")
    await h.deliver(h.slack.as_mention(event))
    await h.settle(timeout=30)
    await h.stop()
    replies = h.slack.bot_replies(CHANNEL, event["ts"])
    assert seen_words(h.slack, event["ts"]) == words
    assert len(replies) >= 2 and all(m.stream_started for m in replies)  # each continues as a stream
    assert not any(c.error == "message_not_in_streaming_state" for c in h.slack.calls)  # before it expired


async def test_a_stream_that_expires_mid_answer_loses_and_doubles_nothing(
    http_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = http_harness
    h.slack.stream_ttl = 1.5
    monkeypatch.setattr(writers, "STREAM_MAX_AGE", 60.0)  # the bot expects more time than Slack gives
    await h.start(SLACK_STREAMING="native")
    words = numbered_words(600)
    h.mistral.queue(Script(chunks=chunks(long_answer(words), 30), delay=0.03))  # about 4 s of streaming
    event = ask(h, "slowly")
    await h.deliver(h.slack.as_mention(event))
    await h.settle(timeout=30)
    await h.stop()
    assert any(c.error == "message_not_in_streaming_state" for c in h.slack.calls)
    assert seen_words(h.slack, event["ts"]) == words
    assert_within_limits(h.slack, h.slack.bot_replies(CHANNEL, event["ts"]))
    assert not any(c.error in ("streaming_state_conflict", "cant_delete_message") for c in h.slack.calls)
