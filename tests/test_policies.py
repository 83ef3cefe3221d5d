"""The admins' policies end to end: who may ask, usage and cost, quotas and the budget alert, redaction and
retention, through the real bot against the loopback fakes."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from bot.core.quotas import month_start
from bot.storage import ThreadKey, UsageRecord
from tests.conftest import Harness, until
from tests.fakes.slack import BOT_USER, TEAM

CHANNEL = "C0GENERAL"
ELSEWHERE = "C0RANDOM"
MODEL = "mistral-large-latest"


def mention(text: str) -> str:
    return f"<@{BOT_USER}> {text}"


async def ask(h: Harness, text: str, *, user: str = "U0ADA", channel: str = CHANNEL) -> dict[str, Any]:
    """A mention, delivered as Slack does (app_mention and its message twin); returns its event."""
    event = h.slack.user_message(channel, user, mention(text))
    await h.deliver(h.slack.as_mention(event))
    await h.deliver(event)
    await h.settle()
    return event


def ephemerals_to(h: Harness, user: str) -> list[dict[str, Any]]:
    return [e for e in h.slack.ephemerals if e.get("user") == user]


# who may ask ------------------------------------------------------------------------------------------------


async def test_a_mention_where_the_bot_is_not_enabled_gets_one_private_note_and_nothing_is_kept(
    harness: Harness,
) -> None:
    bot = await harness.start(ALLOWED_CHANNELS=CHANNEL)
    event = await ask(harness, "what is brie?", channel=ELSEWHERE)
    await harness.deliver(harness.slack.as_mention(event), retry=1)  # Slack's redelivery: still one note
    await harness.settle()
    notes = ephemerals_to(harness, "U0ADA")
    assert len(notes) == 1 and "not enabled in this channel" in notes[0]["text"]
    assert notes[0]["channel"] == ELSEWHERE
    # A follow-up in that thread is not addressed to the bot: silence.
    reply = harness.slack.user_message(ELSEWHERE, "U0ADA", "anyone?", thread_ts=event["ts"])
    await harness.deliver(reply)
    await harness.settle()
    assert len(ephemerals_to(harness, "U0ADA")) == 1
    assert harness.mistral.chat_requests == [] and harness.slack.bot_replies(ELSEWHERE, event["ts"]) == []
    assert await bot.store.get_conversation(ThreadKey(TEAM, ELSEWHERE, event["ts"])) is None  # nothing kept

    # Where it is enabled, it answers as ever.
    allowed = await ask(harness, "and camembert?")
    assert len(harness.mistral.chat_requests) == 1 and harness.slack.bot_replies(CHANNEL, allowed["ts"])


async def test_dms_need_dm_in_the_allowed_channels_and_people_need_to_be_listed(http_harness: Harness) -> None:
    h = http_harness
    await h.start(ALLOWED_CHANNELS=CHANNEL, ALLOWED_USERS="U0ADA")
    dm = h.slack.user_message("D0ADA", "U0ADA", "hello there", channel_type="im")
    await h.deliver(dm)
    await h.settle()
    assert "direct messages" in ephemerals_to(h, "U0ADA")[0]["text"]
    await ask(h, "may I?", user="U0BOB")
    assert "ALLOWED_USERS" in ephemerals_to(h, "U0BOB")[0]["text"]
    assert h.mistral.chat_requests == []
    # /ask by someone not listed: a private note, and nothing posted in the channel.
    reply = await h.command("/ask", "what is brie?", user="U0BOB", channel=CHANNEL)
    assert not reply.get("text")  # acknowledged at once; the note comes through response_url
    note = await until(lambda: h.slack.responses, message="the /ask note")
    assert "ALLOWED_USERS" in note[0]["text"] and note[0]["response_type"] == "ephemeral"
    assert not [c for c in h.slack.calls_to("chat.postMessage") if c.args.get("channel") == CHANNEL]
    await h.stop()
    await h.start(ALLOWED_CHANNELS=f"{CHANNEL},dm")
    dm = h.slack.user_message("D0ADA", "U0ADA", "hello again", channel_type="im")
    await h.deliver(dm)
    await h.settle()
    assert len(h.mistral.chat_requests) == 1 and h.slack.bot_replies("D0ADA", dm["ts"])


# usage and cost -----------------------------------------------------------------------------------------------


async def test_each_answer_stores_the_reported_usage_and_its_cost_and_the_cache_key(http_harness: Harness) -> None:
    h = http_harness
    # 1 USD per input token and 2 per output token, so the cost shows the arithmetic.
    bot = await h.start(MODEL_PRICES=json.dumps({MODEL: {"input": 1e6, "output": 2e6}}))
    first = await ask(h, "Name a cheese")
    follow_up = h.slack.user_message(CHANNEL, "U0ADA", "And a wine?", thread_ts=first["ts"])
    await h.deliver(follow_up)
    await h.settle()
    requests = h.mistral.chat_requests
    assert len(requests) == 2
    conversation = await bot.store.get_conversation(ThreadKey(TEAM, CHANNEL, first["ts"]))
    assert conversation is not None  # one conversation, one cache key: its id
    assert [r.get("prompt_cache_key") for r in requests] == [str(conversation.id)] * 2
    reported = h.mistral.usages
    assert len(reported) == 2
    rows = await bot.store.usage_by("user", since=0)
    assert len(rows) == 1 and rows[0].key == "U0ADA" and rows[0].answers == 2
    assert rows[0].prompt_tokens == sum(u["prompt_tokens"] for u in reported)
    assert rows[0].completion_tokens == sum(u["completion_tokens"] for u in reported)
    cached = sum(u.get("prompt_tokens_details", {}).get("cached_tokens", 0) for u in reported)
    assert rows[0].cached_tokens == cached and cached > 0  # the second turn's history came from the cache
    expected = sum(
        (u["prompt_tokens"] - c) * 1 + c * 0.1 + u["completion_tokens"] * 2
        for u in reported
        for c in [u.get("prompt_tokens_details", {}).get("cached_tokens", 0)]
    )
    assert abs(rows[0].cost - expected) < 1e-6
    by_model = await bot.store.usage_by("model", since=0)
    assert [r.key for r in by_model] == [MODEL]


# quotas ---------------------------------------------------------------------------------------------------------


async def test_past_the_daily_tokens_a_private_note_says_when_it_resets_and_the_model_is_not_called(
    harness: Harness,
) -> None:
    await harness.start(USER_DAILY_TOKENS="10")
    await ask(harness, "first question")
    assert len(harness.mistral.chat_requests) == 1  # under the quota until this answer
    second = await ask(harness, "second question")
    assert len(harness.mistral.chat_requests) == 1  # no model call
    assert harness.slack.bot_replies(CHANNEL, second["ts"]) == []
    notes = ephemerals_to(harness, "U0ADA")
    assert len(notes) == 1 and "<!date^" in notes[0]["text"] and "reset" in notes[0]["text"].lower()
    await ask(harness, "my own question", user="U0BOB")  # another person's quota is their own
    assert len(harness.mistral.chat_requests) == 2


async def test_the_monthly_budget_alerts_the_admins_once_at_80_percent_and_then_stops_the_model(
    http_harness: Harness,
) -> None:
    h = http_harness
    bot = await h.start(WORKSPACE_MONTHLY_BUDGET="100", BOT_ADMINS="U0BOB", MODEL_PRICES=f"{MODEL}=0/0")
    now = time.time()
    spent = UsageRecord(TEAM, CHANNEL, "U0ADA", None, MODEL, None, 1000, 100, 0, 85.0, now)
    await bot.store.record_usage(spent)
    await ask(h, "under budget")
    assert len(h.mistral.chat_requests) == 1
    alerts = [c for c in h.slack.calls_to("chat.postMessage") if c.args.get("channel") == "U0BOB"]
    assert len(alerts) == 1 and "85%" in alerts[0].args["text"]
    await ask(h, "still under budget")
    assert len([c for c in h.slack.calls_to("chat.postMessage") if c.args.get("channel") == "U0BOB"]) == 1
    # Spending of an earlier month does not count; this month's does.
    await bot.store.record_usage(
        UsageRecord(TEAM, CHANNEL, "U0ADA", None, MODEL, None, 1, 1, 0, 500.0, month_start(now) - 3600)
    )
    await ask(h, "last month's spending is not this month's")
    assert len(h.mistral.chat_requests) == 3
    await bot.store.record_usage(UsageRecord(TEAM, CHANNEL, "U0ADA", None, MODEL, None, 1, 1, 0, 20.0, now))
    refused = await ask(h, "over budget", user="U0BOB")
    assert len(h.mistral.chat_requests) == 3 and h.slack.bot_replies(CHANNEL, refused["ts"]) == []
    note = ephemerals_to(h, "U0BOB")[0]["text"]
    assert "budget" in note and "<!date^" in note


# redaction ------------------------------------------------------------------------------------------------------


def sqlite_rows(h: Harness, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(h.tmp_path / "bot.db") as db:
        return db.execute(sql).fetchall()


async def test_redaction_keeps_matches_from_the_model_and_the_store_and_says_so(http_harness: Harness) -> None:
    h = http_harness
    await h.start(REDACT="email,card,secret,phone,ticket-\\d+")
    secret = "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx"
    question = f"mail ada@example.com, card 4111 1111 1111 1111, token {secret}, call +33 6 12 34 56 78, ticket-42"
    event = await ask(h, question)
    sent = json.dumps(h.mistral.chat_requests[0]["messages"])
    stored = json.dumps(sqlite_rows(h, "SELECT text FROM messages"))
    for private in ("ada@example.com", "4111 1111 1111 1111", secret, "12 34 56 78", "ticket-42"):
        assert private not in sent and private not in stored
    assert "[email withheld]" in sent and "[card withheld]" in stored
    answer = h.slack.bot_replies(CHANNEL, event["ts"])[0].text
    assert "withheld" in answer  # the note under the answer
    # A shared text file is redacted too, before the model and before the store keeps what was read.
    log = h.slack.host_file(b"config:\npassword=hunter2hunter2\nowner bob@example.com\n", "app.log", "text/plain")
    shared = h.slack.file_message(CHANNEL, "U0ADA", mention("what is wrong?"), [log])
    await h.deliver(shared)
    await h.settle()
    sent = json.dumps(h.mistral.chat_requests[-1]["messages"])
    assert "hunter2hunter2" not in sent and "bob@example.com" not in sent and "[email withheld]" in sent
    assert "hunter2hunter2" not in json.dumps(sqlite_rows(h, "SELECT files FROM messages"))
    assert "withheld" in h.slack.bot_replies(CHANNEL, shared["ts"])[0].text


# retention ------------------------------------------------------------------------------------------------------


async def test_retention_deletes_old_messages_and_keeps_usage(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    old = await ask(h, "an old question")
    await h.stop()
    forty_days = time.time() - 40 * 86_400
    with sqlite3.connect(h.tmp_path / "bot.db") as db:
        db.execute("UPDATE messages SET created_at = ?, updated_at = ?", (forty_days, forty_days))
    bot = await h.start(RETENTION_DAYS="30")
    await until(lambda: not sqlite_rows(h, "SELECT id FROM messages"), message="the old messages to go")
    new = await ask(h, "a new question")
    texts = [t for (t,) in sqlite_rows(h, "SELECT text FROM messages ORDER BY id")]
    assert any("a new question" in t for t in texts) and not any("an old question" in t for t in texts)
    assert (await bot.store.usage_total(since=0)).answers == 2  # usage figures stay
    # The old thread is still known: a follow-up there is answered (with what is left of its history).
    follow_up = h.slack.user_message(CHANNEL, "U0ADA", "still there?", thread_ts=old["ts"])
    await h.deliver(follow_up)
    await h.settle()
    assert len(h.slack.bot_replies(CHANNEL, old["ts"])) == 2
    assert h.slack.bot_replies(CHANNEL, new["ts"])
