"""Every failure ends in a clear message in the thread and a consistent history; the bot keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import deque
from pathlib import Path

import aiosqlite
import pytest

from bot.core.mrkdwn import to_mrkdwn
from bot.mistral import ErrorKind
from bot.notes import HELP, NOTES, RESTART_NOTE, SHUTDOWN_NOTE, TRUNCATED_NOTE
from bot.slack.blocks import RETRY_ACTION
from bot.slack.parts import CURSOR
from tests.conftest import Harness, until
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER

CHANNEL = "C0OPS"


def ask(h: Harness, text: str, channel: str = CHANNEL) -> dict:
    return h.slack.user_message(channel, "U0ADA", f"<@{BOT_USER}> {text}")


async def answer_of(h: Harness, event: dict) -> str:
    await h.deliver(h.slack.as_mention(event))
    await h.settle(timeout=30)
    replies = h.slack.bot_replies(event["channel"], event["ts"])
    return "\n".join(r.text for r in replies)


async def statuses(h: Harness) -> list[tuple[str, str]]:
    async with (
        aiosqlite.connect(h.tmp_path / "bot.db") as db,
        db.execute("SELECT status, text FROM messages WHERE role = 'assistant' ORDER BY id") as cursor,
    ):
        return [(r[0], r[1]) for r in await cursor.fetchall()]


async def still_serving(h: Harness) -> None:
    event = ask(h, "are you alive?")
    assert await answer_of(h, event) == "You said: [Ada] are you alive?"


# the model API ---------------------------------------------------------------------------------------


async def test_a_429_is_retried_after_retry_after_while_the_thread_says_so(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    h.mistral.queue(Script(status=429, headers={"Retry-After": "1"}, body={"message": "Requests rate limit exceeded"}))
    event = ask(h, "patience")
    assert await answer_of(h, event) == "You said: [Ada] patience"
    assert len(h.mistral.requests) == 2
    assert h.mistral.request_times[1] - h.mistral.request_times[0] >= 0.9  # Retry-After honoured
    statuses_shown = h.slack.status_history(CHANNEL, event["ts"])
    assert any("trying again" in s.text for s in statuses_shown)  # the loading state says so, not frozen
    assert (await statuses(h))[-1][0] == "complete"


async def test_5xx_until_the_budget_runs_out_then_a_clear_message_then_service(http_harness: Harness) -> None:
    h = http_harness
    await h.start(MISTRAL_RETRY_BUDGET="1.5")
    h.mistral.queue(*[Script(status=503, body={"detail": "Service Unavailable"}) for _ in range(30)])
    event = ask(h, "hello?")
    shown = await answer_of(h, event)
    assert NOTES[ErrorKind.UNAVAILABLE] in shown
    assert 2 <= len(h.mistral.requests) < 30
    assert (await statuses(h))[-1] == ("failed", "")
    h.mistral.scripts.clear()
    await still_serving(h)


@pytest.mark.parametrize(
    "status,body,kind",
    [
        (401, {"message": "Unauthorized", "request_id": "r1"}, ErrorKind.AUTH),
        (403, {"detail": "Forbidden"}, ErrorKind.AUTH),
        (
            400,
            {"object": "error", "message": "Prompt too long", "type": "x", "param": None, "code": "3051"},
            ErrorKind.REFUSED,
        ),
        (422, {"detail": [{"loc": ["body", "x"], "msg": "bad", "type": "extra_forbidden"}]}, ErrorKind.REFUSED),
    ],
)
async def test_client_errors_are_reported_without_retrying(
    http_harness: Harness, status: int, body: dict, kind: ErrorKind
) -> None:
    h = http_harness
    await h.start()
    h.mistral.queue(Script(status=status, body=body))
    shown = await answer_of(h, ask(h, "q"))
    assert shown == f"_⚠️ {NOTES[kind]}_"
    assert len(h.mistral.requests) == 1
    await still_serving(h)


async def test_an_unknown_model_gets_a_specific_message(http_harness: Harness) -> None:
    h = http_harness
    await h.start(MISTRAL_MODEL="mistral-retired-2023")
    shown = await answer_of(h, ask(h, "q"))
    assert "doesn't exist or was retired" in shown
    assert len(h.mistral.requests) == 1


async def test_a_wrong_key_is_never_logged(http_harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h = http_harness
    await h.start(MISTRAL_API_KEY="sk-wrong-key-123456")
    shown = await answer_of(h, ask(h, "q"))
    assert "MISTRAL_API_KEY" in shown
    assert "sk-wrong-key-123456" not in caplog.text


@pytest.mark.parametrize(
    "script,note",
    [
        (Script(chunks=["Part one. ", "Part two. ", "never"], cut_after=2), NOTES[ErrorKind.INTERRUPTED]),
        (Script(chunks=["Part one. ", "Part two. "], finish_reason="error"), NOTES[ErrorKind.INTERRUPTED]),
    ],
)
async def test_a_stream_cut_mid_answer_keeps_the_partial_text_and_a_note(
    http_harness: Harness, script: Script, note: str
) -> None:
    h = http_harness
    await h.start()
    h.mistral.queue(script)
    event = ask(h, "tell me")
    shown = await answer_of(h, event)
    assert shown.startswith("Part one. Part two.") and note in shown and "never" not in shown
    assert (await statuses(h))[-1] == ("partial", "Part one. Part two. ")
    assert len(h.mistral.requests) == 1  # text was shown: never retried behind the reader's back
    # The partial answer is part of the history of the next turn.
    await h.deliver(h.slack.user_message(CHANNEL, "U0ADA", "go on", thread_ts=event["ts"]))
    await h.settle()
    sent = h.mistral.chat_requests[-1]["messages"]
    assert sent[-2] == {"role": "assistant", "content": "Part one. Part two. "}


async def test_a_stream_that_goes_silent_hits_the_idle_timeout(http_harness: Harness) -> None:
    h = http_harness
    await h.start(MISTRAL_IDLE_TIMEOUT="0.5")
    h.mistral.queue(Script(chunks=["Thinking hard", " forever"], hang_after=1))
    shown = await answer_of(h, ask(h, "deep question"))
    assert shown.startswith("Thinking hard") and NOTES[ErrorKind.TIMEOUT] in shown
    assert (await statuses(h))[-1] == ("partial", "Thinking hard")
    await still_serving(h)


async def test_an_answer_cut_by_max_tokens_says_so(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    h.mistral.queue(Script(chunks=["The story begins"], finish_reason="length"))
    shown = await answer_of(h, ask(h, "a long story"))
    assert shown.startswith("The story begins") and "length limit" in shown
    assert (await statuses(h))[-1][0] == "complete"


# Slack -------------------------------------------------------------------------------------------------


async def test_slack_429s_on_updates_lose_and_reorder_nothing(harness: Harness) -> None:
    h = harness
    h.slack.limits["chat.update"] = (3, 1.5)
    h.slack.retry_after = 1
    await h.start()
    words = [f"w{i} " for i in range(60)]
    h.mistral.queue(Script(chunks=words, delay=0.03))
    event = ask(h, "count")
    shown = await answer_of(h, event)
    assert shown == "".join(words).strip()
    reply = h.slack.bot_replies(CHANNEL, event["ts"])[0]
    # Every update showed more, never older text. The last two may show the same text: an update held back by
    # the 429s can carry all of it, still with the cursor, just before the final one.
    shown_lengths = [len(t.removesuffix(CURSOR).rstrip()) for t in reply.history[1:]]
    assert shown_lengths == sorted(shown_lengths)


async def test_msg_too_long_splits_and_continues(http_harness: Harness) -> None:
    h = http_harness
    h.slack.update_limit = h.slack.post_limit = 1_000
    await h.start()
    sentences = [f"Sentence number {i} is here." for i in range(150)]
    h.mistral.queue(Script(chunks=[s + " " for s in sentences]))
    event = ask(h, "long")
    await answer_of(h, event)
    replies = h.slack.bot_replies(CHANNEL, event["ts"])
    assert len(replies) >= 5 and all(len(r.text) <= 1_000 for r in replies)
    shown = " ".join(r.text for r in replies)
    assert all(shown.count(s) == 1 for s in sentences)
    assert any(c.error == "msg_too_long" for c in h.slack.calls)


async def test_two_passing_slack_failures_on_updates_still_complete_the_answer(harness: Harness) -> None:
    h = harness
    await h.start()
    h.slack.errors["chat.update"] = deque(["internal_error", "http_503"])
    event = ask(h, "fine?")
    assert await answer_of(h, event) == "You said: [Ada] fine?"
    assert (await statuses(h))[-1] == ("complete", "You said: [Ada] fine?")


async def test_slack_failing_for_good_ends_in_a_note_a_private_message_and_a_partial_row(
    http_harness: Harness,
) -> None:
    """Before: two internal_errors on chat.update left "Thinking…" for ever, no note, no private message."""
    h = http_harness
    await h.start()
    h.slack.errors["chat.update"] = deque(["internal_error"] * 40)
    event = ask(h, "will it show?")
    await h.deliver(h.slack.as_mention(event))
    await h.settle(timeout=60)
    replies = h.slack.bot_replies(CHANNEL, event["ts"])
    assert "Slack didn't take my answer" in replies[-1].text  # a new message got through
    assert h.slack.ephemerals and "Slack didn't take my answer" in h.slack.ephemerals[-1]["text"]
    assert (await statuses(h))[-1] == ("partial", "You said: [Ada] will it show?")
    h.slack.errors.clear()
    await still_serving(h)


async def test_a_locked_thread_is_logged_and_the_asker_told_privately(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    h.slack.errors["chat.postMessage"] = deque(["restricted_action_thread_locked"])
    event = ask(h, "q")
    await answer_of(h, event)
    assert h.slack.ephemerals and "locked" in h.slack.ephemerals[0]["text"]
    assert h.slack.ephemerals[0]["user"] == "U0ADA"
    # The loading state came first, so the text reached the writer before its first post was refused.
    assert (await statuses(h))[-1][0] in ("failed", "partial")
    assert h.slack.status_of(CHANNEL, event["ts"]) == ""  # the loading state does not linger
    await still_serving(h)


async def test_edits_and_deletions_update_the_stored_history(harness: Harness) -> None:
    h = harness
    await h.start()
    root = ask(h, "my password is hunter2")
    await answer_of(h, root)
    second = h.slack.user_message(CHANNEL, "U0ADA", "I like tea", thread_ts=root["ts"])
    await h.deliver(second)
    await h.settle()
    await h.deliver(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": CHANNEL,
            "ts": "9.9",
            "deleted_ts": root["ts"],
            "previous_message": {**root},
        }
    )
    await h.deliver(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": CHANNEL,
            "ts": "9.8",
            "message": {**second, "text": "I like coffee", "edited": {"user": "U0ADA"}},
        }
    )
    await h.deliver(h.slack.user_message(CHANNEL, "U0ADA", "what do I like?", thread_ts=root["ts"]))
    await h.settle()
    sent = h.mistral.chat_requests[-1]["messages"]
    contents = " ".join(m["content"] for m in sent if m["role"] == "user")
    assert "hunter2" not in contents
    assert "[Ada] I like coffee" in contents and "tea" not in contents


# bad input ---------------------------------------------------------------------------------------------


async def test_a_bare_mention_gets_a_short_help_reply(harness: Harness) -> None:
    await harness.start()
    event = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}>")
    assert await answer_of(harness, event) == to_mrkdwn(HELP)[0]
    assert harness.mistral.requests == []


async def test_a_message_far_larger_than_the_context_is_trimmed_with_a_note(http_harness: Harness) -> None:
    h = http_harness
    await h.start(MISTRAL_CONTEXT_TOKENS="2000")
    event = ask(h, "summarise: " + "lorem ipsum " * 40_000)
    shown = await answer_of(h, event)
    assert TRUNCATED_NOTE in shown
    sent = h.mistral.chat_requests[-1]["messages"][-1]["content"]
    assert len(sent) < 20_000 and sent.endswith("context …]")


async def test_unicode_emoji_and_slack_markup_are_made_readable(harness: Harness) -> None:
    await harness.start()
    event = harness.slack.user_message(
        CHANNEL,
        "U0ADA",
        f"<@{BOT_USER}> ask <@U0BOB> in <#C0X|général> about <https://ex.com|the doc> 🎉 &lt;3 日本",
    )
    await answer_of(harness, event)
    assert harness.mistral.chat_requests[-1]["messages"][-1]["content"] == (
        "[Ada] ask @Bob in #général about the doc (https://ex.com) 🎉 <3 日本"
    )


# the process -------------------------------------------------------------------------------------------


async def test_sigterm_lets_an_answer_in_flight_finish_within_the_grace_period(harness: Harness) -> None:
    h = harness
    await h.start(SHUTDOWN_GRACE_SECONDS="10")
    h.mistral.queue(Script(chunks=[f"c{i} " for i in range(10)], delay=0.1))
    event = ask(h, "slow one")
    await h.deliver(h.slack.as_mention(event))
    await until(lambda: h.mistral.requests, message="the model call")
    await h.stop()  # what the SIGTERM handler does
    reply = h.slack.bot_replies(CHANNEL, event["ts"])[0]
    assert reply.text == "c0 c1 c2 c3 c4 c5 c6 c7 c8 c9"
    assert (await statuses(h))[-1][0] == "complete"


async def test_sigterm_past_the_grace_period_marks_the_answer_interrupted(http_harness: Harness) -> None:
    h = http_harness
    await h.start(SHUTDOWN_GRACE_SECONDS="0.5")
    h.mistral.queue(Script(chunks=["Half an ans", "wer", " never"], hang_after=2))
    event = ask(h, "slow one")
    await h.deliver(h.slack.as_mention(event))
    await until(
        lambda: (
            "Half an answer" in h.slack.bot_replies(CHANNEL, event["ts"])[0].text
            if h.slack.bot_replies(CHANNEL, event["ts"])
            else False
        ),
        message="partial text",
    )
    await h.stop()
    shown = h.slack.bot_replies(CHANNEL, event["ts"])[0].text
    assert shown.startswith("Half an answer") and SHUTDOWN_NOTE in shown
    assert (await statuses(h))[-1] == ("partial", "Half an answer")


async def killed_mid_answer(h: Harness, question: str) -> dict:
    """The real process, killed with SIGKILL while the model is still answering `question`; returns the event."""
    h.mistral.queue(Script(chunks=["Started to ", "answer", " and then"], hang_after=2))
    env = {**os.environ, **h.base_env(), "LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, cwd=Path(__file__).parent.parent
    )
    try:
        await until(lambda: _listening(h.port), timeout=30, message="the bot to listen")
        event = ask(h, question)
        status, _ = await h.slack.deliver_http(h.events_url, h.slack.as_mention(event))
        assert status == 200
        await until(
            lambda: any("Started to answer" in m.text for m in h.slack.bot_replies(CHANNEL, event["ts"])),
            timeout=20,
            message="partial text in Slack",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert (await statuses(h))[-1] == ("streaming", "Started to answer")
    return event


async def test_a_hard_kill_mid_answer_is_continued_at_the_next_start(http_harness: Harness) -> None:
    """The next start takes the answer over: the model continues the text shown (an assistant `prefix`), in
    the same Slack message, and nothing is shown twice."""
    h = http_harness
    event = await killed_mid_answer(h, "doomed")
    h.mistral.queue(Script(chunks=["Started to answer", " and then", " finished."]))  # the prefix comes back first
    await h.start()
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    assert reply.blocks_text() == "Started to answer and then finished."
    assert (await statuses(h))[-1] == ("complete", "Started to answer and then finished.")
    resumed = h.mistral.chat_requests[-1]["messages"]
    assert resumed[-1] == {"role": "assistant", "content": "Started to answer", "prefix": True}
    assert resumed[-2] == {"role": "user", "content": "[Ada] doomed"}
    await still_serving(h)


async def test_a_continuation_the_model_refuses_keeps_the_text_and_says_so(http_harness: Harness) -> None:
    """Continuing is impossible when the model refuses the prefixed request: the thread keeps what it had, with
    the reason, and the store says partial."""
    h = http_harness
    event = await killed_mid_answer(h, "doomed")
    h.mistral.queue(Script(status=400, body={"object": "error", "message": "prefix not supported", "code": "400"}))
    await h.start()
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    assert reply.text.startswith("Started to answer") and NOTES[ErrorKind.REFUSED] in reply.text
    assert reply.text.count("Started to answer") == 1
    assert (await statuses(h))[-1] == ("partial", "Started to answer")
    await still_serving(h)


async def test_a_hard_kill_too_long_ago_is_marked_at_the_next_start(http_harness: Harness) -> None:
    """Past RESUME_WITHIN_SECONDS the thread has moved on: the answer is marked, with Try again."""
    h = http_harness
    event = await killed_mid_answer(h, "doomed")
    requests = len(h.mistral.chat_requests)
    await asyncio.sleep(1.1)
    await h.start(RESUME_WITHIN_SECONDS="1")
    reply = h.slack.bot_replies(CHANNEL, event["ts"])[0]
    assert reply.text.startswith("Started to answer") and RESTART_NOTE in reply.text
    assert (await statuses(h))[-1] == ("partial", "Started to answer")
    assert len(h.mistral.chat_requests) == requests  # not continued
    # The note's Try again button runs the interrupted turn again, in the same message.
    [retry] = [e for b in reply.blocks for e in b.get("elements", []) if e.get("action_id") == RETRY_ACTION]
    h.mistral.queue(Script(chunks=["A whole ", "answer."]))
    click = h.slack.block_action(event["user"], CHANNEL, reply.ts, reply.thread_ts, RETRY_ACTION, retry["value"])
    await h.interact(click)
    await h.settle()
    assert [r.ts for r in h.slack.bot_replies(CHANNEL, event["ts"])] == [reply.ts]
    assert reply.blocks_text() == "A whole answer."
    assert (await statuses(h))[-1] == ("complete", "A whole answer.")
    await still_serving(h)


async def test_sigterm_stops_the_real_process_cleanly(http_harness: Harness) -> None:
    h = http_harness
    env = {**os.environ, **h.base_env(), "LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, cwd=Path(__file__).parent.parent
    )
    await until(lambda: _listening(h.port), timeout=30, message="the bot to listen")
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
