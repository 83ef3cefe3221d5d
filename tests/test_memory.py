"""An answer's objects are freed the moment it ends, by reference counting alone.

Whatever is left in a reference cycle waits for the cyclic garbage collector, whose full passes are rare: a
burst of answers then stays in memory until one comes, and the allocator's memory grows with the bursts (the
benchmark's soak showed it). So each test runs answers with the collector off, through the real bot and
fakes, and then looks for anything of those answers still alive.
"""

from __future__ import annotations

import gc
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from bot.answer import Answer
from bot.notes import STOPPED_IN_SLACK
from bot.slack.answer_writer import AnswerWriter
from bot.slack.parts import UpdatedMessage
from bot.slack.streams import StoppedStream, StreamedMessage
from tests.conftest import Harness, until
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER

CHANNEL = "C0MEM"
KINDS = (Answer, AnswerWriter, UpdatedMessage, StreamedMessage, StoppedStream)


def left_over() -> list[object]:
    """The objects of answers still alive, and the model responses (the other end of httpx's cycle)."""
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, KINDS) or (isinstance(o, httpx.Response) and o.request.url.path == "/v1/chat/completions")
    ]


def forget_log_records() -> None:
    """pytest keeps every log record of a test, and a record keeps its arguments: a logged error, and through its
    traceback the answer it ended. The bot's own handler writes a record and lets it go."""
    for handler in logging.getLogger().handlers:
        records = getattr(handler, "records", None)
        if isinstance(records, list):
            records.clear()


@contextmanager
def no_cyclic_collector() -> Iterator[None]:
    gc.collect()
    assert not left_over(), "answers of an earlier test are still alive"
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def ask(h: Harness, text: str) -> dict:
    event = h.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> {text}")
    await h.deliver(h.slack.as_mention(event))
    return event


async def test_answers_leave_nothing_for_the_cyclic_collector(harness: Harness) -> None:
    h = harness
    await h.start()
    with no_cyclic_collector():
        events = [await ask(h, f"question {i}") for i in range(3)]
        await h.settle()
        assert all(h.slack.bot_replies(CHANNEL, e["ts"]) for e in events)
        assert not left_over()


async def test_native_streams_leave_nothing_for_the_cyclic_collector(http_harness: Harness) -> None:
    h = http_harness
    await h.start(SLACK_STREAMING="native")
    with no_cyclic_collector():
        h.mistral.queue(Script(chunks=["Brie ", "is ", "soft."], delay=0.05))
        event = await ask(h, "cheese?")
        await h.settle()
        [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
        assert reply.text == "Brie is soft." and h.slack.calls_to("chat.startStream")
        assert not left_over()


async def test_slack_failures_on_the_way_leave_nothing_for_the_cyclic_collector(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    with no_cyclic_collector():
        h.slack.errors["chat.update"] = deque(["internal_error", "http_503"])  # passing failures, tried again
        h.mistral.queue(Script(chunks=["Brie ", "is ", "soft."], delay=0.2))
        event = await ask(h, "cheese?")
        await h.settle()
        [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
        assert reply.text == "Brie is soft." and not h.slack.errors["chat.update"]  # both failures were met
        assert not left_over()


async def test_a_broken_model_stream_leaves_nothing_for_the_cyclic_collector(
    http_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = http_harness
    await h.start()
    with no_cyclic_collector():
        h.mistral.queue(Script(chunks=["one ", "two ", "three"], cut_after=2))
        event = await ask(h, "count")
        await h.settle()
        [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
        assert "one two" in reply.blocks_text() and "three" not in reply.blocks_text()  # a note ends it
        assert "model error" in caplog.text
        forget_log_records()
        assert not left_over()


async def test_a_stream_stopped_in_slack_leaves_nothing_for_the_cyclic_collector(http_harness: Harness) -> None:
    h = http_harness
    await h.start(SLACK_STREAMING="native")
    with no_cyclic_collector():
        h.mistral.queue(Script(chunks=[f"word{i} " for i in range(200)], delay=0.1))
        event = await ask(h, "count slowly")
        reply = await until(lambda: next(iter(h.slack.bot_replies(CHANNEL, event["ts"])), None), message="a stream")
        await until(lambda: "word3" in reply.text, message="some streamed text")
        h.slack.stop_stream_by_user(CHANNEL, reply.ts, "U0ADA")
        await h.settle()
        await until(lambda: STOPPED_IN_SLACK in reply.blocks_text(), message="the stopped note")
        assert not left_over()
