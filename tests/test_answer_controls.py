"""Stop, feedback, Try again and Regenerate, end to end: buttons clicked in the fake Slack (HTTP form payloads
and Socket Mode envelopes) reach the real bot, which stops the model stream, stores ratings and re-runs turns."""

from __future__ import annotations

import asyncio

from bot.notes import ONLY_LATEST, ONLY_PARTICIPANTS, STALE_ACTION, STOPPED_IN_SLACK
from bot.slack.blocks import FEEDBACK_ACTION, REGENERATE_ACTION, RETRY_ACTION, STOP_ACTION
from bot.storage import Status
from tests.conftest import Harness, until
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER, TEAM, Message
from tests.test_home import home_text, open_tab

CHANNEL = "C0GENERAL"
SLOW = [f"word{i} " for i in range(200)]  # 20 s at 0.1 s a chunk: long enough to stop in the middle


def mention(text: str) -> str:
    return f"<@{BOT_USER}> {text}"


def control(message: Message, action_id: str) -> str:
    """The value of a control on a message (a feedback button's: its positive one)."""
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element.get("value") or element["positive_button"]["value"])
    raise AssertionError(f"no {action_id} on the message; it has {message.actions()}")


def answer_id(message: Message, action_id: str) -> int:
    return int(control(message, action_id).rpartition(":")[2])


async def ask(h: Harness, text: str, *, user: str = "U0ADA") -> dict:
    event = h.slack.user_message(CHANNEL, user, mention(text))
    await h.deliver(h.slack.as_mention(event))
    return event


async def click(h: Harness, message: Message, action_id: str, *, user: str = "U0ADA", value: str | None = None) -> None:
    kind = "feedback_buttons" if action_id == FEEDBACK_ACTION else "button"
    payload = h.slack.block_action(
        user,
        message.channel,
        message.ts,
        message.thread_ts,
        action_id,
        value if value is not None else control(message, action_id),
        action_type=kind,
    )
    await h.interact(payload)


def private_notes(h: Harness) -> list[str]:
    return [str(p.get("text")) for p in h.slack.response_url_posts(response_type="ephemeral")]


async def test_stop_ends_the_model_request_and_keeps_the_partial_answer(harness: Harness) -> None:
    h = harness
    await h.start()
    h.mistral.queue(Script(chunks=SLOW, delay=0.1))
    event = await ask(h, "Count slowly")
    reply = await until(lambda: next(iter(h.slack.bot_replies(CHANNEL, event["ts"])), None), message="a reply")
    await until(lambda: STOP_ACTION in reply.actions() and "word3" in reply.blocks_text(), message="text and Stop")
    await click(h, reply, STOP_ACTION)
    await h.settle()

    # The model request ended (the fake notices at its next write): no more tokens are paid for.
    await until(lambda: h.mistral.abandoned == 1, message="the model stream closed")
    shown = reply.blocks_text()
    assert shown.rstrip().endswith("_⚠️ Stopped by @Ada._")
    assert "word199" not in shown
    assert STOP_ACTION not in reply.actions() and FEEDBACK_ACTION in reply.actions()
    stored = await h.bot.store.answer_ref(answer_id(reply, FEEDBACK_ACTION))
    assert stored is not None and stored.status is Status.PARTIAL
    assert stored.text and stored.text.split()[-1] in shown  # what was shown is what was kept


async def test_only_people_in_the_conversation_can_stop_an_answer(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    h.mistral.queue(Script(chunks=SLOW[:30], delay=0.05))
    event = await ask(h, "Count")
    reply = await until(lambda: next(iter(h.slack.bot_replies(CHANNEL, event["ts"])), None), message="a reply")
    await until(lambda: STOP_ACTION in reply.actions(), message="a Stop button")
    await click(h, reply, STOP_ACTION, user="U0BOB")  # Bob has not written in this thread
    await h.settle()
    assert await until(lambda: ONLY_PARTICIPANTS in private_notes(h), message="a private note")
    assert "word29" in reply.blocks_text() and h.mistral.abandoned == 0  # the answer went on to its end


async def test_slacks_own_stop_on_a_native_stream_keeps_exactly_what_it_showed(http_harness: Harness) -> None:
    h = http_harness
    await h.start(SLACK_STREAMING="native")
    h.mistral.queue(Script(chunks=SLOW, delay=0.1))
    event = await ask(h, "Count slowly")
    reply = await until(lambda: next(iter(h.slack.bot_replies(CHANNEL, event["ts"])), None), message="a stream")
    await until(lambda: "word5" in reply.text, message="some streamed text")
    h.slack.stop_stream_by_user(CHANNEL, reply.ts, "U0ADA")
    seen = reply.text
    await h.settle()

    await until(lambda: h.mistral.abandoned == 1, message="the model stream closed")
    assert [r.ts for r in h.slack.bot_replies(CHANNEL, event["ts"])] == [reply.ts]  # no new message for the note
    assert seen.strip() in reply.blocks_text() and STOPPED_IN_SLACK in reply.blocks_text()
    stored = await h.bot.store.answer_ref(answer_id(reply, FEEDBACK_ACTION))
    assert stored is not None and stored.status is Status.PARTIAL
    assert stored.text.strip() == seen.strip()  # nothing Slack did not show is kept


async def test_feedback_is_stored_per_person_replaced_and_acknowledged_privately(harness: Harness) -> None:
    h = harness
    await h.start()
    event = await ask(h, "Name a cheese")
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    assert FEEDBACK_ACTION in reply.actions() and REGENERATE_ACTION in reply.actions()
    answer = answer_id(reply, FEEDBACK_ACTION)

    await click(h, reply, FEEDBACK_ACTION, value=f"good:{answer}")
    await click(h, reply, FEEDBACK_ACTION, user="U0BOB", value=f"good:{answer}")
    await click(h, reply, FEEDBACK_ACTION, value=f"bad:{answer}")  # Ada changes her mind
    await until(lambda: len(private_notes(h)) == 3, message="three private acknowledgements")
    assert all("Thanks" in note for note in private_notes(h))
    assert await h.bot.store.feedback_of(answer) == {"U0ADA": "bad", "U0BOB": "good"}
    [count] = await h.bot.store.feedback_counts(TEAM)
    assert (count.channel_id, count.persona, count.good, count.bad) == (CHANNEL, None, 1, 1)
    await open_tab(h, "U0ADA", "home", "D0ADA")  # the Home tab counts them per channel
    assert f"<#{CHANNEL}>: default persona, model `mistral-large-latest` · 👍 1 👎 1" in home_text(
        h.slack.home_view("U0ADA") or {}
    )


async def test_try_again_reruns_the_failed_turn_in_place_and_keeps_one_answer(harness: Harness) -> None:
    h = harness
    await h.start()
    h.mistral.queue(Script(chunks=["Half ", "an ", "answer ", "lost"], cut_after=2, delay=0.02))
    event = await ask(h, "Tell me about brie")
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    assert RETRY_ACTION in reply.actions() and "cut short" in reply.blocks_text()

    h.mistral.queue(Script(chunks=["Brie ", "is ", "soft."]))
    await click(h, reply, RETRY_ACTION)
    await h.settle()
    assert [r.ts for r in h.slack.bot_replies(CHANNEL, event["ts"])] == [reply.ts]  # written in place
    assert reply.blocks_text() == "Brie is soft." and RETRY_ACTION not in reply.actions()
    assert h.slack.status_of(CHANNEL, event["ts"]) == ""  # the loading state of the re-run was cleared

    follow = h.slack.user_message(CHANNEL, "U0ADA", "And camembert?", thread_ts=event["ts"])
    await h.deliver(follow)
    await h.settle()
    sent = h.mistral.chat_requests[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "assistant"] == ["Brie is soft."]  # only the one that stands


async def test_regenerate_replaces_the_last_answer_and_only_the_last(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    h.mistral.queue(Script(chunks=["First ", "try."]))
    event = await ask(h, "Name a cheese")
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])

    h.mistral.queue(Script(chunks=["Second ", "try."]))
    await click(h, reply, REGENERATE_ACTION)
    await h.settle()
    assert reply.blocks_text() == "Second try."
    ref = await h.bot.store.answer_ref(answer_id(reply, FEEDBACK_ACTION))
    assert ref is not None
    history = await h.bot.store.history(ref.conversation.id, ref.user_ts)
    assert [m.text for m in history if m.role == "assistant"] == ["Second try."]

    follow = h.slack.user_message(CHANNEL, "U0ADA", "Another?", thread_ts=event["ts"])
    await h.deliver(follow)
    await h.settle()
    requests = len(h.mistral.chat_requests)
    await click(h, reply, REGENERATE_ACTION)  # no longer the latest answer
    assert await until(lambda: ONLY_LATEST in private_notes(h), message="a private note")
    assert len(h.mistral.chat_requests) == requests and reply.blocks_text() == "Second try."


async def test_two_clicks_on_try_again_rerun_the_turn_once(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    h.mistral.queue(*[Script(status=503)] * 50)  # more than the retry budget (5 s) gets through
    event = await ask(h, "Hello?")
    await h.settle(timeout=30)
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    assert RETRY_ACTION in reply.actions()
    h.mistral.scripts.clear()
    requests = len(h.mistral.chat_requests)
    h.mistral.queue(Script(chunks=["Here ", "now."], delay=0.05))
    await asyncio.gather(click(h, reply, RETRY_ACTION), click(h, reply, RETRY_ACTION, user="U0ADA"))
    await h.settle()
    assert len(h.mistral.chat_requests) == requests + 1
    assert reply.blocks_text() == "Here now."


async def test_forged_and_stale_clicks_get_a_quiet_note_or_nothing(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    event = await ask(h, "Hi there")
    await h.settle()
    [reply] = h.slack.bot_replies(CHANNEL, event["ts"])
    answer = answer_id(reply, FEEDBACK_ACTION)

    await click(h, reply, REGENERATE_ACTION, value="987654")  # an answer the bot never wrote
    other_team = h.slack.block_action("U0ADA", CHANNEL, reply.ts, reply.thread_ts, STOP_ACTION, str(answer))
    other_team["team"] = {"id": "T0OTHER"}
    await h.interact(other_team)
    for garbage in ("", "abc", "-1", "good:", "1e9", "good:12:13", "x" * 5000):
        await click(h, reply, REGENERATE_ACTION, value=garbage)
    broken = h.slack.block_action("U0ADA", CHANNEL, reply.ts, reply.thread_ts, STOP_ACTION, str(answer))
    broken["actions"] = "not a list"
    await h.interact(broken)
    del broken["user"]
    await h.interact(broken)
    await h.settle()
    # An unknown answer and another workspace's button: a short note each; garbage: nothing at all.
    assert await until(lambda: private_notes(h).count(STALE_ACTION) == 2, message="two stale notes")
    assert len(private_notes(h)) == 2
    assert len(h.mistral.chat_requests) == 1  # nothing re-ran
    follow = h.slack.user_message(CHANNEL, "U0ADA", "Still there?", thread_ts=event["ts"])
    await h.deliver(follow)
    await h.settle()
    assert len(h.mistral.chat_requests) == 2  # and the bot still answers
