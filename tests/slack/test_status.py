"""Loading states: Slack's "is thinking…" is an answer's first sign of life, a placeholder where Slack has none.

Against the fake Slack through the real slack_sdk client; the status texts as tables.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import pytest

from bot.slack.api import SlackApi
from bot.slack.blocks import STOP_ACTION
from bot.slack.status import (
    LOADING_MESSAGE_LIMIT,
    LOADING_MESSAGES,
    METHOD,
    THINKING,
    THINKING_STATUS,
    shorten,
    status_payload,
)
from bot.slack.writers import AnswerWriter, Writers
from tests.conftest import until
from tests.fakes import slack as fs
from tests.slack.conftest import assert_counts_back_to_zero

TEAM = fs.TEAM
CHANNEL = "C0STATUS"
THREAD = "1700000000.000200"
BUSY = "_The model is busy; trying again in 3s (attempt 2)…_"


def writer(writers: Writers, channel: str = CHANNEL) -> AnswerWriter:
    return writers.new(TEAM, channel, THREAD, recipient_user_id="U0ADA", answer_id=7)


def status_calls(slack: fs.FakeSlack) -> list[fs.Call]:
    return slack.calls_to(METHOD)


# the texts ------------------------------------------------------------------------------------------------


def test_the_thinking_status_rotates_its_loading_messages() -> None:
    payload = status_payload(THINKING)
    assert payload["status"] == THINKING_STATUS
    assert payload["loading_messages"] == list(LOADING_MESSAGES) and 3 <= len(LOADING_MESSAGES) <= 5
    assert all(0 < len(m) <= LOADING_MESSAGE_LIMIT for m in payload["loading_messages"])


@pytest.mark.parametrize(
    "status,shown,loading",
    [
        ("_Trying again…_", "Trying again…", ["Trying again…"]),
        (BUSY, BUSY.strip("_"), [BUSY.strip("_")]),  # 50 characters: it fits
        ("_" + "word " * 12 + "_", "word " * 11 + "word", ["word " * 8 + "word…"]),
        ("*waiting for the thread*", "waiting for the thread", ["waiting for the thread"]),
        ("__", THINKING_STATUS, [THINKING_STATUS]),  # nothing left: still a status
    ],
)
def test_other_statuses_are_plain_text_and_the_one_message_shown(status: str, shown: str, loading: list[str]) -> None:
    assert status_payload(status) == {"status": shown, "loading_messages": loading}


def test_an_empty_status_clears() -> None:
    assert status_payload("") == {"status": ""}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("short", "short"),
        ("x" * 50, "x" * 50),
        ("x" * 60, "x" * 49 + "…"),  # no word to end at
        (
            "one two three four five six seven eight nine ten eleven",
            "one two three four five six seven eight nine ten…",
        ),
    ],
)
def test_shorten(text: str, expected: str) -> None:
    assert shorten(text) == expected and len(shorten(text)) <= LOADING_MESSAGE_LIMIT


# against Slack ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["update", "native"])
async def test_the_loading_state_is_the_first_sign_of_life_and_no_placeholder_is_posted(
    slack: fs.FakeSlack, api: SlackApi, mode: str
) -> None:
    w = writer(Writers(api, mode=mode, min_interval=0.05))
    began = time.monotonic()
    await w.start()
    assert time.monotonic() - began < 1.0  # one quick call
    assert slack.status_of(CHANNEL, THREAD) == THINKING_STATUS
    [change] = slack.status_history(CHANNEL, THREAD)
    assert 3 <= len(change.loading_messages) <= 5
    assert not slack.bot_replies(CHANNEL, THREAD) and w.parts == [] and w.started
    w.append("Hello there")
    await until(lambda: slack.bot_replies(CHANNEL, THREAD), message="the first message")
    assert slack.status_of(CHANNEL, THREAD) == ""  # Slack cleared it when the answer posted
    w.append(", all")
    await w.finish()
    [reply] = slack.bot_replies(CHANNEL, THREAD)
    assert reply.blocks_text() == "Hello there, all" and w.parts == [reply.ts]
    assert len(status_calls(slack)) == 1  # nothing to clear: the post did
    if mode == "update":
        assert reply.history[0].startswith("Hello there")  # its first post carried text, not a placeholder
    await w._writers.close(grace=10)
    assert_counts_back_to_zero(api)


async def test_where_slack_refuses_loading_states_a_placeholder_shows_and_the_channel_is_remembered(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    slack.status_refused = {CHANNEL}
    writers = Writers(api, mode="update", min_interval=0.05)
    for n in range(2):
        w = writer(writers)
        await w.start()
        reply = slack.bot_replies(CHANNEL, THREAD)[-1]
        assert reply.text == THINKING and reply.actions() == [STOP_ACTION]  # today's placeholder, with Stop
        w.append(f"answer {n}")
        await w.finish()
        assert reply.blocks_text() == f"answer {n}"
    assert [c.error for c in status_calls(slack)] == ["channel_type_not_supported"]  # asked once, then known
    other = writers.new(TEAM, "C0OTHER", THREAD, recipient_user_id="U0ADA", answer_id=8)
    await other.start()
    assert slack.status_of("C0OTHER", THREAD) == THINKING_STATUS  # other channels are not affected
    await other.abort()
    assert_counts_back_to_zero(api)


@pytest.mark.parametrize("refusal", ["missing_scope", "not_in_channel", "unknown_method"])
async def test_every_lasting_refusal_falls_back_to_a_placeholder(
    slack: fs.FakeSlack, api: SlackApi, refusal: str
) -> None:
    slack.errors[METHOD] = deque([refusal])
    writers = Writers(api, mode="update")
    w = writer(writers)
    await w.start()
    assert [m.text for m in slack.bot_replies(CHANNEL, THREAD)] == [THINKING]
    assert (TEAM, CHANNEL) in writers.no_status
    await w.abort()


async def test_passing_failures_are_retried_and_never_remembered(slack: fs.FakeSlack, api: SlackApi) -> None:
    writers = Writers(api, mode="update")
    slack.errors[METHOD] = deque(["internal_error"])
    w = writer(writers)
    await w.start()
    assert slack.status_of(CHANNEL, THREAD) == THINKING_STATUS and not slack.bot_replies(CHANNEL, THREAD)
    await w.abort()
    slack.errors[METHOD] = deque(["internal_error"] * 10)  # past the urgent retries: a placeholder this time
    w = writer(writers)
    await w.start()
    assert [m.text for m in slack.bot_replies(CHANNEL, THREAD)] == [THINKING]
    assert (TEAM, CHANNEL) not in writers.no_status
    await w.abort()
    assert_counts_back_to_zero(api)


async def test_a_spent_status_budget_shows_a_placeholder_at_once(slack: fs.FakeSlack, api: SlackApi) -> None:
    budget = api.pacer(TEAM).budget
    now = api.pacer(TEAM).now()
    for _ in range(budget.limit(METHOD).calls):
        budget.record(METHOD, now)
    w = writer(Writers(api, mode="update"))
    await asyncio.wait_for(w.start(), 1.0)
    assert [m.text for m in slack.bot_replies(CHANNEL, THREAD)] == [THINKING]
    assert not status_calls(slack)
    await w.abort()


@pytest.mark.parametrize("mode", ["update", "native"])
async def test_a_status_while_the_model_retries_is_shown_as_the_loading_state(
    slack: fs.FakeSlack, api: SlackApi, mode: str
) -> None:
    w = writer(Writers(api, mode=mode, min_interval=0.05))
    await w.start()
    w.set_status(BUSY)
    await until(lambda: len(slack.status_history(CHANNEL, THREAD)) == 2, message="the second status")
    assert slack.status_of(CHANNEL, THREAD).startswith("The model is busy; trying again in 3s")
    assert not slack.bot_replies(CHANNEL, THREAD)  # no placeholder, no empty stream
    w.append("at last")
    await w.finish()
    await w._writers.close(grace=10)
    [reply] = slack.bot_replies(CHANNEL, THREAD)
    assert reply.blocks_text() == "at last" and slack.status_of(CHANNEL, THREAD) == ""
    assert not slack.calls_to("chat.delete")
    assert_counts_back_to_zero(api)


async def test_a_status_that_slack_starts_refusing_mid_answer_turns_into_a_placeholder(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    w = writer(Writers(api, mode="update", min_interval=0.05))
    await w.start()
    slack.errors[METHOD] = deque(["missing_scope"])
    w.set_status(BUSY)
    await until(lambda: slack.bot_replies(CHANNEL, THREAD), message="a placeholder")
    [reply] = slack.bot_replies(CHANNEL, THREAD)
    assert reply.text == BUSY and reply.actions() == [STOP_ACTION]
    w.append("done")
    await w.finish()
    assert reply.blocks_text() == "done" and w.parts == [reply.ts]
    assert_counts_back_to_zero(api)


async def test_an_answer_with_only_a_note_posts_it_and_one_that_ends_silently_clears_its_state(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    writers = Writers(api, mode="native", min_interval=0.05)
    w = writer(writers)
    await w.start()
    await w.finish(["The model is unavailable."], retry=True)
    [reply] = slack.bot_replies(CHANNEL, THREAD)
    assert reply.blocks_text() == "_⚠️ The model is unavailable._" and w.parts == [reply.ts]
    assert slack.status_of(CHANNEL, THREAD) == ""

    quiet = writers.new(TEAM, CHANNEL, "1700000000.000300", recipient_user_id="U0ADA", answer_id=9)
    await quiet.start()
    assert slack.status_of(CHANNEL, "1700000000.000300") == THINKING_STATUS
    await quiet.abort()  # nothing was ever posted there: the state is cleared, not left for two minutes
    assert slack.status_of(CHANNEL, "1700000000.000300") == ""
    assert [c.text for c in slack.status_history(CHANNEL, "1700000000.000300")] == [THINKING_STATUS, ""]
    await writers.close(grace=10)
    assert_counts_back_to_zero(api)


async def test_a_writer_whose_turn_never_finished_does_not_hold_up_shutdown(api: SlackApi) -> None:
    writers = Writers(api, mode="update")
    w = writer(writers)
    await w.start()
    w.set_status(BUSY)  # and then its turn ended without finish() or abort()
    began = time.monotonic()
    await writers.close(grace=10)
    assert time.monotonic() - began < 1.0
