"""An answer's objects are freed the moment it ends, by reference counting alone.

Whatever is left in a reference cycle waits for the cyclic garbage collector, whose full passes are rare: a
burst of answers then stays in memory until one comes, and the allocator's memory grows with the bursts (the
benchmark's soak showed it). So each test runs answers with the collector off, through the real bot and
fakes, and then looks for anything of those answers still alive.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bot.answer import Answer
from bot.slack.answer_writer import AnswerWriter
from bot.slack.parts import UpdatedMessage
from bot.slack.streams import StoppedStream, StreamedMessage
from tests.conftest import Harness
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
