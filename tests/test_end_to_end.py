"""The bot end to end: real Bolt, slack_sdk and httpx against loopback fakes of Slack and Mistral."""

from __future__ import annotations

import asyncio
import json
import time

from bot.core.mrkdwn import to_mrkdwn
from tests.conftest import Harness, until
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_ID, BOT_USER, TEAM

CHANNEL = "C0GENERAL"


def mention(text: str) -> str:
    return f"<@{BOT_USER}> {text}"


async def test_mention_gets_a_streamed_answer_in_its_thread(harness: Harness) -> None:
    await harness.start()
    harness.mistral.queue(Script(chunks=["Brie ", "is **soft**", " and `mild`."], delay=0.05))
    event = harness.slack.user_message(CHANNEL, "U0ADA", mention("best cheese?"))
    await harness.deliver(harness.slack.as_mention(event))
    await harness.deliver(event)  # the same mention, delivered as a message event too
    await harness.settle()
    replies = harness.slack.bot_replies(CHANNEL, event["ts"])
    assert [r.text for r in replies] == ["Brie is *soft* and `mild`."]
    assert replies[0].thread_ts == event["ts"]
    # It filled in as the model streamed: a loading state first, then growing text, then the whole answer.
    status = harness.slack.status_history(CHANNEL, event["ts"])[0]
    assert status.text == "is thinking…" and status.at < replies[0].changed_at[0]
    assert len(replies[0].history) >= 2
    assert len(harness.mistral.chat_requests) == 1
    sent = harness.mistral.chat_requests[0]["messages"]
    assert sent[0]["role"] == "system" and "Slack" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "[Ada] best cheese?"}
    assert harness.mistral.chat_requests[0]["stream"] is True


async def test_follow_ups_in_the_thread_carry_the_whole_history_in_order(harness: Harness) -> None:
    await harness.start()
    first = harness.slack.user_message(CHANNEL, "U0ADA", mention("Name a cheese"))
    await harness.deliver(harness.slack.as_mention(first))
    await harness.settle()
    # Replies without a mention, from two people.
    second = harness.slack.user_message(CHANNEL, "U0BOB", "And a wine?", thread_ts=first["ts"])
    await harness.deliver(second)
    await harness.settle()
    third = harness.slack.user_message(CHANNEL, "U0ADA", "Which goes best?", thread_ts=first["ts"])
    await harness.deliver(third)
    await harness.settle()

    assert len(harness.mistral.chat_requests) == 3
    last = harness.mistral.chat_requests[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert last[1]["content"] == "[Ada] Name a cheese"
    assert last[2]["content"] == "You said: [Ada] Name a cheese"
    assert last[3]["content"] == "[Bob] And a wine?"
    assert last[5]["content"] == "[Ada] Which goes best?"
    assert len(harness.slack.bot_replies(CHANNEL, first["ts"])) == 3


async def test_history_survives_a_restart_without_slack_thread_history(harness: Harness) -> None:
    await harness.start()
    first = harness.slack.user_message(CHANNEL, "U0ADA", mention("Remember the number 42"))
    await harness.deliver(harness.slack.as_mention(first))
    await harness.settle()
    await harness.stop()

    harness.slack.thread_history_available = False  # Slack's thread history is no source of truth
    await harness.start()
    follow_up = harness.slack.user_message(CHANNEL, "U0ADA", "What was the number?", thread_ts=first["ts"])
    await harness.deliver(follow_up)
    await harness.settle()
    sent = harness.mistral.chat_requests[-1]["messages"]
    assert sent[1]["content"] == "[Ada] Remember the number 42"
    assert sent[2]["role"] == "assistant"
    assert sent[-1]["content"] == "[Ada] What was the number?"
    assert not harness.slack.calls_to("conversations.replies")


async def test_direct_messages_are_answered_in_their_thread_and_continue_there(harness: Harness) -> None:
    await harness.start()
    dm = "D0ADA"
    first = harness.slack.user_message(dm, "U0ADA", "hello there", channel_type="im")
    await harness.deliver(first)
    await harness.settle()
    [answer] = harness.slack.bot_replies(dm, first["ts"])
    assert answer.text == "You said: [Ada] hello there"
    # The loading state came first, and the new DM thread got a title from its question (no model call).
    assert harness.slack.status_history(dm, first["ts"])[0].at < answer.changed_at[0]
    assert harness.slack.title_of(dm, first["ts"]) == "hello there"
    assert len(harness.mistral.chat_requests) == 1
    reply = harness.slack.user_message(dm, "U0ADA", "and again", thread_ts=first["ts"], channel_type="im")
    await harness.deliver(reply)
    await harness.settle()
    sent = harness.mistral.chat_requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert len(harness.slack.bot_replies(dm, first["ts"])) == 2


async def test_duplicate_deliveries_are_answered_once_even_across_a_restart(harness: Harness) -> None:
    await harness.start()
    event = harness.slack.user_message(CHANNEL, "U0ADA", mention("once please"))
    await harness.deliver(harness.slack.as_mention(event))
    await harness.deliver(event)
    await harness.deliver(harness.slack.as_mention(event), retry=1)  # Slack thinks it timed out
    await harness.settle()
    await harness.stop()
    await harness.start()
    await harness.deliver(harness.slack.as_mention(event), retry=2)
    await harness.settle()
    assert len(harness.mistral.chat_requests) == 1
    assert len(harness.slack.bot_replies(CHANNEL, event["ts"])) == 1


async def test_the_bot_ignores_chatter_strangers_threads_bots_and_subtypes(harness: Harness) -> None:
    await harness.start()
    slack = harness.slack
    chatter = slack.user_message(CHANNEL, "U0ADA", "just chatting")
    await harness.deliver(chatter)
    foreign_root = slack.user_message(CHANNEL, "U0ADA", "a thread without the bot")
    await harness.deliver(foreign_root)
    await harness.deliver(slack.user_message(CHANNEL, "U0BOB", "reply", thread_ts=foreign_root["ts"]))
    own = {**slack.user_message(CHANNEL, BOT_USER, mention("loop?")), "bot_id": BOT_ID}
    await harness.deliver(own)
    other_bot = {**slack.user_message(CHANNEL, "U0OTHER", mention("hi bot")), "bot_id": "B0OTHER"}
    await harness.deliver(other_bot)
    join = {**slack.user_message(CHANNEL, "U0ADA", mention("has joined")), "subtype": "channel_join"}
    await harness.deliver(join)
    await harness.settle()
    assert harness.mistral.requests == []
    assert not slack.calls_to("chat.postMessage")


async def test_a_mention_inside_an_existing_thread_reads_that_thread_once(harness: Harness) -> None:
    await harness.start()
    slack = harness.slack
    root = slack.user_message(CHANNEL, "U0ADA", "Our deploy failed with exit code 137")
    slack.user_message(CHANNEL, "U0BOB", "Probably memory", thread_ts=root["ts"])
    ask = slack.user_message(CHANNEL, "U0ADA", mention("what does 137 mean?"), thread_ts=root["ts"])
    await harness.deliver(slack.as_mention(ask))
    await harness.settle()
    sent = harness.mistral.chat_requests[-1]["messages"]
    assert sent[1:] == [
        {
            "role": "user",
            "content": "[Ada] Our deploy failed with exit code 137\n\n[Bob] Probably memory"
            "\n\n[Ada] what does 137 mean?",
        }
    ]
    follow = slack.user_message(CHANNEL, "U0BOB", "thanks, and 139?", thread_ts=root["ts"])
    await harness.deliver(follow)
    await harness.settle()
    assert len(slack.calls_to("conversations.replies")) == 1
    assert harness.mistral.chat_requests[-1]["messages"][-1]["content"] == "[Bob] thanks, and 139?"


async def test_a_long_answer_continues_in_further_messages_with_nothing_lost(harness: Harness) -> None:
    await harness.start()
    paragraphs = [f"Paragraph {i}: " + ("lorem ipsum dolor " * 25).strip() for i in range(30)]
    code = "```python\n" + "\n".join(f"print({i})" for i in range(150)) + "\n```"
    answer = "\n\n".join(paragraphs[:15]) + "\n\n" + code + "\n\n" + "\n\n".join(paragraphs[15:])
    chunks = [answer[i : i + 200] for i in range(0, len(answer), 200)]
    harness.mistral.queue(Script(chunks=chunks, delay=0.003))
    event = harness.slack.user_message(CHANNEL, "U0ADA", mention("write a lot"))
    await harness.deliver(harness.slack.as_mention(event))
    await harness.settle(timeout=60)
    replies = harness.slack.bot_replies(CHANNEL, event["ts"])
    assert len(replies) >= 4
    assert all(len(r.text) <= 4000 for r in replies)
    shown = "\n".join(r.text for r in replies)
    # Every paragraph and every code line appears exactly once, in order.
    positions = [shown.index(p[:40]) for p in paragraphs]
    assert positions == sorted(positions)
    assert all(shown.count(p[:40]) == 1 for p in paragraphs)
    for i in range(150):
        assert shown.count(f"print({i})\n") + shown.count(f"print({i})`") == 1
    # Code split across messages is closed and reopened, so each message renders on its own.
    assert all(r.text.count("```") % 2 == 0 for r in replies)
    rendered, _ = to_mrkdwn(answer)
    assert shown.replace("```\n```\n", "").replace("\n", "").replace(" ", "") == rendered.replace("\n", "").replace(
        " ", ""
    )


async def test_threads_run_concurrently_and_turns_in_one_thread_in_order(harness: Harness) -> None:
    await harness.start()
    slack = harness.slack
    harness.mistral.default_delay = 0.05
    roots = [slack.user_message(f"C0CHAN{i}", "U0ADA", mention(f"question {i}")) for i in range(4)]
    started = time.monotonic()
    await asyncio.gather(*(harness.deliver(slack.as_mention(e)) for e in roots))
    await harness.settle()
    for i, root in enumerate(roots):
        assert slack.bot_replies(f"C0CHAN{i}", root["ts"])[0].text == f"You said: [Ada] question {i}"
    # Two quick follow-ups in one thread are answered in order, each knowing the one before.
    a = slack.user_message("C0CHAN0", "U0ADA", "first follow-up", thread_ts=roots[0]["ts"])
    b = slack.user_message("C0CHAN0", "U0BOB", "second follow-up", thread_ts=roots[0]["ts"])
    await harness.deliver(a)
    await harness.deliver(b)
    await harness.settle()
    last = harness.mistral.chat_requests[-1]["messages"]
    assert [m["content"] for m in last[-3:]] == [
        "[Ada] first follow-up",
        "You said: [Ada] first follow-up",
        "[Bob] second follow-up",
    ]
    assert time.monotonic() - started < 60  # sanity bound only; speed lives in bench/


async def test_forged_unsigned_and_stale_requests_are_refused_without_a_model_call(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    event = h.slack.user_message(CHANNEL, "U0ADA", mention("sneaky"))
    body = json.dumps(h.slack.envelope(h.slack.as_mention(event))).encode()
    assert (await h.slack.post_http(h.events_url, body, signed=False))[0] == 401
    forged = h.slack.sign(body, secret="not-the-secret")
    assert (await h.slack.post_http(h.events_url, body, signed=False, headers=forged))[0] == 401
    stale = h.slack.sign(body, timestamp=int(time.time()) - 600)
    assert (await h.slack.post_http(h.events_url, body, signed=False, headers=stale))[0] == 401
    await h.settle()
    assert h.mistral.requests == []
    assert not h.slack.calls_to("chat.postMessage")


async def test_garbage_bodies_get_a_4xx_not_a_500(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    for body, kind in [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (json.dumps({"type": "event_callback", "team_id": TEAM}).encode(), "application/json"),
        (b"payload=%7Bbroken", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ]:
        status, text = await h.slack.post_http(h.events_url, body, content_type=kind)
        assert 400 <= status < 500, (body, status, text)
        assert "Traceback" not in text
    # The bot is still fine afterwards.
    event = h.slack.user_message(CHANNEL, "U0ADA", mention("still there?"))
    await h.deliver(h.slack.as_mention(event))
    await h.settle()
    assert h.slack.bot_replies(CHANNEL, event["ts"])[0].text == "You said: [Ada] still there?"


async def test_url_verification_echoes_the_challenge(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"}).encode()
    status, text = await h.slack.post_http(h.events_url, body)
    assert status == 200 and "abc123" in text


async def test_until_helper_reports_what_it_waited_for() -> None:
    try:
        await until(lambda: False, timeout=0.05, message="nothing")
    except AssertionError as exc:
        assert "nothing" in str(exc)
    else:
        raise AssertionError("until() should time out")
