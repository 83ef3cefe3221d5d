"""Streaming under Slack's rate limits: native streaming with fallbacks, and many answers at once."""

from __future__ import annotations

import asyncio

from bot.core.pacing import CallBudget, Limit
from bot.slack.pacer import Pacer
from tests.conftest import Harness
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER, TEAM

CHANNEL = "C0LIVE"
ANSWER = ["**Brie** ", "is soft; ", "`camembert` ", "too."]


def ask(h: Harness, text: str, channel: str = CHANNEL) -> dict:
    return h.slack.user_message(channel, "U0ADA", f"<@{BOT_USER}> {text}")


async def test_auto_streams_natively_to_the_asker_and_closes_the_stream(harness: Harness) -> None:
    h = harness
    await h.start(SLACK_STREAMING="auto")
    h.mistral.queue(Script(chunks=ANSWER, delay=0.05))
    event = ask(h, "cheese?")
    await h.deliver(h.slack.as_mention(event))
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    assert reply.text == "".join(ANSWER)  # Markdown: Slack renders it
    assert not reply.streaming
    [start] = h.slack.calls_to("chat.startStream")
    assert start.args["recipient_user_id"] == "U0ADA" and start.args["recipient_team_id"] == TEAM
    assert start.args["thread_ts"] == event["ts"]
    # The end of the text rides on the stop, with the answer's controls: one call, not an append and a stop.
    [stop] = h.slack.calls_to("chat.stopStream")
    assert stop.args["markdown_text"] and stop.args["blocks"]
    assert not h.slack.calls_to("chat.update")


async def test_a_refused_native_stream_falls_back_to_updates_and_is_remembered(http_harness: Harness) -> None:
    h = http_harness
    h.slack.native_dm_only = True
    await h.start(SLACK_STREAMING="auto")
    first = ask(h, "one")
    await h.deliver(h.slack.as_mention(first))
    await h.settle()
    assert [r.text for r in h.slack.bot_replies(CHANNEL, first["ts"])] == ["You said: [Ada] one"]
    second = ask(h, "two")
    await h.deliver(h.slack.as_mention(second))
    await h.settle()
    assert [r.text for r in h.slack.bot_replies(CHANNEL, second["ts"])] == ["You said: [Ada] two"]
    assert len(h.slack.calls_to("chat.startStream")) == 1  # not asked again for this channel
    # DMs still stream natively.
    dm = h.slack.user_message("D0ADA", "U0ADA", "dm", channel_type="im")
    await h.deliver(dm)
    await h.settle()
    assert h.slack.bot_replies("D0ADA", dm["ts"])[0].text == "You said: [Ada] dm"
    assert len(h.slack.calls_to("chat.startStream")) == 2


async def test_an_expired_stream_continues_in_a_new_message_with_nothing_lost(http_harness: Harness) -> None:
    h = http_harness
    h.slack.stream_ttl = 1.5  # room for the first appends, then it expires mid-answer
    await h.start(SLACK_STREAMING="native")
    words = [f"word{i} " for i in range(40)]
    h.mistral.queue(Script(chunks=words, delay=0.1))
    event = ask(h, "long")
    await h.deliver(h.slack.as_mention(event))
    await h.settle()
    replies = h.slack.bot_replies(CHANNEL, event["ts"])
    assert len(replies) == 2
    assert (replies[0].text + " " + replies[1].text).split() == "".join(words).split()
    assert any(c.error == "message_not_in_streaming_state" for c in h.slack.calls)


async def test_a_retry_before_the_first_token_shows_in_the_loading_state(http_harness: Harness) -> None:
    h = http_harness
    await h.start(SLACK_STREAMING="native")
    h.mistral.queue(Script(status=503, headers={"Retry-After": "0.3"}))
    event = ask(h, "busy?")
    await h.deliver(h.slack.as_mention(event))
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])  # no placeholder, no empty stream: a loading state
    assert reply.text == "You said: [Ada] busy?" and reply.stream_started
    assert any("trying again" in s.text for s in h.slack.status_history(CHANNEL, event["ts"]))
    assert not h.slack.calls_to("chat.delete")


async def test_auto_uses_updates_once_the_stream_budget_is_spent(http_harness: Harness) -> None:
    h = http_harness
    h.slack.limits = {"chat.startStream": (2, 60.0), "chat.stopStream": (2, 60.0)}
    await h.start(SLACK_STREAMING="auto")
    h.mistral.default_delay = 0.05
    events = [ask(h, f"q{i}", channel=f"C0CH{i}") for i in range(5)]
    # The bot learns Tier 2's real size here from the first 429, then stops asking for streams.
    await asyncio.gather(*(h.deliver(h.slack.as_mention(e)) for e in events))
    await h.settle(timeout=30)
    for i, e in enumerate(events):
        assert "".join(r.text for r in h.slack.bot_replies(f"C0CH{i}", e["ts"])) == f"You said: [Ada] q{i}"
    assert 2 <= len([c for c in h.slack.calls_to("chat.startStream") if c.status == 200]) <= 2
    assert h.slack.calls_to("chat.update")


async def test_many_concurrent_answers_all_complete_under_tight_limits(http_harness: Harness) -> None:
    h = http_harness
    # Tighter than the bot believes Slack to be: it must learn from 429s and still lose nothing.
    h.slack.limits = {"chat.update": (8, 3.0)}
    h.slack.channel_limits = {"chat.postMessage": (3, 1.0)}
    h.slack.retry_after = 1
    await h.start(SLACK_STREAMING="update")
    h.mistral.default_delay = 0.02
    events = [ask(h, f"question number {i} " + "padding " * 10, channel=f"C0CH{i % 3}") for i in range(16)]
    await asyncio.gather(*(h.deliver(h.slack.as_mention(e)) for e in events))
    await h.settle(timeout=120)
    for i, e in enumerate(events):
        replies = h.slack.bot_replies(f"C0CH{i % 3}", e["ts"])
        assert [r.text for r in replies] == [f"You said: [Ada] question number {i} " + ("padding " * 10).strip()]
    assert len(h.mistral.requests) == 16


# The pacer's decisions, with a real event loop and short windows ------------------------------------------


async def test_urgent_calls_go_before_intermediate_ones() -> None:
    pacer = Pacer(CallBudget({"chat.update": Limit(1, 0.3)}))
    await pacer.acquire("chat.update", urgent=True)  # fills the window
    order: list[str] = []

    async def take(name: str, urgent: bool) -> None:
        await pacer.acquire("chat.update", urgent=urgent)
        order.append(name)

    tasks = [asyncio.create_task(take("intermediate", False))]
    await asyncio.sleep(0.05)
    tasks.append(asyncio.create_task(take("final", True)))
    await asyncio.gather(*tasks)
    assert order == ["final", "intermediate"]


async def test_the_stalest_answer_with_most_new_text_updates_first() -> None:
    pacer = Pacer(CallBudget({"chat.update": Limit(1, 0.3)}))
    await pacer.acquire("chat.update", urgent=True)
    order: list[str] = []

    async def take(name: str, priority: float) -> None:
        await pacer.acquire("chat.update", urgent=False, priority=lambda: priority)
        order.append(name)

    await asyncio.gather(take("fresh", 0.1), take("stale", 5.0), take("middling", 1.0))
    assert order == ["stale", "middling", "fresh"]


async def test_intermediate_updates_leave_a_final_slot_per_answer_in_flight() -> None:
    pacer = Pacer(CallBudget({"chat.update": Limit(4, 60.0)}))
    pacer.answers_in_flight = 2
    await pacer.acquire("chat.update", urgent=False)
    await pacer.acquire("chat.update", urgent=False)
    blocked = asyncio.create_task(pacer.acquire("chat.update", urgent=False))
    await asyncio.sleep(0.1)
    assert not blocked.done()  # the last two slots are kept for the two answers' finals
    await asyncio.wait_for(pacer.acquire("chat.update", urgent=True), 1)
    await asyncio.wait_for(pacer.acquire("chat.update", urgent=True), 1)
    blocked.cancel()
    await asyncio.gather(blocked, return_exceptions=True)


async def test_a_final_update_stuck_behind_the_window_is_posted_anew(http_harness: Harness) -> None:
    h = http_harness
    h.slack.limits = {"chat.update": (3, 60.0)}  # far below what the bot assumes: it learns from the 429
    h.slack.retry_after = 30
    await h.start(SLACK_STREAMING="update")
    words = [f"w{i} " for i in range(60)]  # about 5 s of streaming: the 4th update meets the 429
    h.mistral.queue(Script(chunks=words, delay=0.08))
    event = ask(h, "go")
    await h.deliver(h.slack.as_mention(event))
    await h.settle(timeout=20)
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    assert reply.text == "".join(words).strip()  # the whole answer, in one message, at once
    assert [m.thread_ts for m in h.slack.deleted] == [event["ts"]]  # the stale message is gone
    assert h.slack.rate_limited == 1


async def test_an_abandoned_intermediate_wait_never_takes_a_slot_later() -> None:
    pacer = Pacer(CallBudget({"chat.update": Limit(1, 0.4)}))
    await pacer.acquire("chat.update", urgent=True)  # the window is full for 0.4 s
    finished = asyncio.Event()
    others = [asyncio.create_task(pacer.acquire("chat.update", urgent=False)) for _ in range(5)]
    waiting = asyncio.create_task(pacer.intermediate_slot("chat.update", priority=lambda: 9.0, until=finished))
    await asyncio.sleep(0.05)
    finished.set()  # the answer finished: its final text takes another path
    assert await asyncio.wait_for(waiting, 1) is False
    assert pacer.waiting() == 5  # it left the queue at once
    await asyncio.wait_for(asyncio.gather(*others), 5)
    assert pacer.waiting() == 0
