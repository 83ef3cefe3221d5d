"""An answer's controls, a person's stop in Slack, and answers re-written in place, against the fake Slack."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.slack.api import SlackApi
from bot.slack.blocks import FEEDBACK_ACTION, REGENERATE_ACTION, RETRY_ACTION, STOP_ACTION
from bot.slack.status import METHOD, THINKING, THINKING_STATUS
from bot.slack.streams import NATIVE_REFUSALS, STOPPED_BY_USER
from bot.slack.writers import AnswerStopped, AnswerWriter, Writers
from tests.conftest import until
from tests.fakes import slack as fs
from tests.slack.conftest import assert_counts_back_to_zero

TEAM = fs.TEAM
CHANNEL = "C0CTRL"
THREAD = "1700000000.000400"
ANSWER_ID = 31


def writer(api: SlackApi, mode: str, *, reuse: list[str] | None = None, min_interval: float = 0.05) -> AnswerWriter:
    writers = Writers(api, mode=mode, min_interval=min_interval)
    return writers.new(TEAM, CHANNEL, THREAD, recipient_user_id="U0ADA", answer_id=ANSWER_ID, reuse=reuse or ())


def replies(slack: fs.FakeSlack) -> list[fs.Message]:
    return slack.bot_replies(CHANNEL, THREAD)


def sent_blocks(call: fs.Call) -> list[dict[str, Any]]:
    blocks = call.args.get("blocks", [])
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks for e in b.get("elements", [])]


def values(blocks: list[dict[str, Any]]) -> set[str]:
    found = set()
    for block in blocks:
        for element in block.get("elements", []):
            if element["type"] == "button":
                found.add(element["value"])
            else:
                found |= {element["positive_button"]["value"], element["negative_button"]["value"]}
    return found


async def write(w: AnswerWriter, words: list[str], *, pause: float = 0.01) -> None:
    for word in words:
        w.append(word)
        await asyncio.sleep(pause)


WORDS = [f"word{i} " for i in range(40)]


# controls on chat.update answers -----------------------------------------------------------------------


async def test_a_stop_button_while_writing_then_feedback_and_regenerate(slack: fs.FakeSlack, api: SlackApi) -> None:
    w = writer(api, "update")
    await w.start()
    await write(w, WORDS)
    await w.finish()
    [reply] = replies(slack)
    writes = [c for c in slack.calls if c.method in ("chat.postMessage", "chat.update") and c.status == 200]
    assert len(writes) >= 3  # it was written in several updates
    for call in writes[:-1]:
        blocks = sent_blocks(call)
        assert action_ids(blocks) == [STOP_ACTION] and values(blocks) == {str(ANSWER_ID)}
        assert blocks[0]["type"] == "section" and blocks[0]["text"]["text"] == call.args["text"]  # text in blocks
    assert action_ids(reply.blocks) == [FEEDBACK_ACTION, REGENERATE_ACTION]
    assert values(reply.blocks) == {f"good:{ANSWER_ID}", f"bad:{ANSWER_ID}", str(ANSWER_ID)}
    assert reply.blocks_text() == reply.text == "".join(WORDS).strip()
    assert_counts_back_to_zero(api)


@pytest.mark.parametrize("text,expected", [("half an answer", [FEEDBACK_ACTION, RETRY_ACTION]), ("", [RETRY_ACTION])])
async def test_a_failure_note_offers_try_again(
    slack: fs.FakeSlack, api: SlackApi, text: str, expected: list[str]
) -> None:
    w = writer(api, "update")
    await w.start()
    w.append(text)
    await w.finish(["The model's stream broke off."], retry=True)
    [reply] = replies(slack)
    assert action_ids(reply.blocks) == expected
    assert reply.blocks_text().endswith("_⚠️ The model's stream broke off._")
    assert_counts_back_to_zero(api)


async def test_a_long_answer_keeps_its_controls_on_its_last_message_and_every_section_fits(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    words = [f"w{i:05d} " for i in range(1_500)]  # about 10,500 characters: four messages
    w = writer(api, "update")
    await w.start()
    for i in range(0, len(words), 100):
        w.append("".join(words[i : i + 100]))
        await asyncio.sleep(0.02)
    await w.finish()
    messages = replies(slack)
    assert len(messages) >= 4
    assert " ".join(m.blocks_text() for m in messages).split() == "".join(words).split()
    assert all(action_ids(m.blocks) == [] for m in messages[:-1])  # earlier parts end with no controls
    assert action_ids(messages[-1].blocks) == [FEEDBACK_ACTION, REGENERATE_ACTION]
    for call in slack.calls_to("chat.update") + slack.calls_to("chat.postMessage"):
        assert call.status == 200 and call.error is None  # never invalid_blocks nor msg_too_long
        assert all(len(b["text"]["text"]) < 3_001 for b in sent_blocks(call) if b["type"] == "section")
    assert_counts_back_to_zero(api)


async def test_slack_keeps_blocks_unless_told_so_the_writer_always_says(slack: fs.FakeSlack, api: SlackApi) -> None:
    """chat.update without `blocks` keeps the old ones (and Slack shows them, not the new text)."""
    data = await api.post(TEAM, CHANNEL, "old", thread_ts=THREAD, blocks=[{"type": "section", "text": _mrkdwn("old")}])
    ts = str(data["ts"])
    await api.call(TEAM, "chat.update", channel=CHANNEL, ts=ts, text="new")
    [message] = replies(slack)
    assert message.blocks_text() == "old"  # the fake does as Slack does
    await api.update(TEAM, CHANNEL, ts, "newer")  # as recovery uses it: the blocks go
    assert message.blocks == [] and message.blocks_text() == "newer"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


@pytest.mark.parametrize(
    "blocks,error",
    [
        ([{"type": "section", "text": _mrkdwn("x" * 3_000)}], None),
        ([{"type": "section", "text": _mrkdwn("x" * 3_001)}], "invalid_blocks"),
        ([{"type": "divider"}] * 51, "invalid_blocks"),
        (json.dumps([{"type": "section", "text": _mrkdwn("as a form sends it")}]), None),
        ("not json", "invalid_blocks_format"),
        ({"type": "section"}, "invalid_blocks_format"),
    ],
)
async def test_the_fake_checks_blocks_as_slack_does(slack: fs.FakeSlack, blocks: Any, error: str | None) -> None:
    status, body = slack._dispatch(
        "chat.postMessage", {"channel": CHANNEL, "text": "t", "blocks": blocks}, fs.BOT_TOKEN
    )
    assert status == 200 and body.get("error") == error
    if error is None:
        [message] = replies(slack) or [m for m in slack.messages.values() if m.user == fs.BOT_USER]
        assert message.blocks and message.blocks_text() != "t"


# native streams ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry", [False, True])
async def test_a_stream_gets_its_final_controls_with_its_stop(slack: fs.FakeSlack, api: SlackApi, retry: bool) -> None:
    w = writer(api, "native")
    await w.start()
    await write(w, WORDS[:10])
    await w.finish(["Cut short."] if retry else [], retry=retry)
    await w._writers.close(grace=10)
    [reply] = replies(slack)
    assert reply.stream_started and not reply.streaming
    [stop] = slack.calls_to("chat.stopStream")
    expected = [FEEDBACK_ACTION, RETRY_ACTION if retry else REGENERATE_ACTION]
    assert action_ids(sent_blocks(stop)) == expected == action_ids(reply.blocks)
    assert not any("blocks" in c.args for c in slack.calls_to("chat.appendStream"))  # Slack's own stop serves
    assert reply.text.endswith("_⚠️ Cut short._" if retry else "word9 ")
    assert not slack.calls_to("chat.update")
    assert_counts_back_to_zero(api)


def test_a_person_stopping_a_stream_is_never_taken_for_a_refusal() -> None:
    assert STOPPED_BY_USER not in NATIVE_REFUSALS  # no fallback to chat.update as if streaming failed


async def test_a_person_stopping_the_stream_ends_the_answer_with_what_slack_shows(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    w = writer(api, "native")
    await w.start()
    await write(w, WORDS[:10])
    await until(lambda: replies(slack) and replies(slack)[0].text, message="streamed text")
    [reply] = replies(slack)
    slack.stop_stream_by_user(CHANNEL, reply.ts, "U0ADA")
    with pytest.raises(AnswerStopped):
        for word in WORDS[10:]:
            w.append(word)
            await asyncio.sleep(0.02)
    stream_calls = [c for c in slack.calls if c.method in ("chat.appendStream", "chat.stopStream")]
    assert [c.error for c in stream_calls].count("stopped_by_user") == 1 and stream_calls[-1].error
    assert w.raw == reply.text and w.raw  # exactly what Slack shows
    assert_counts_back_to_zero(api)  # nothing is owed: no stop, no final append
    with pytest.raises(AnswerStopped):
        w.append("more")

    await w.finish(["Stopped by Ada."])
    assert [c for c in slack.calls if c.method in ("chat.appendStream", "chat.stopStream")] == stream_calls
    assert not slack.calls_to("chat.postMessage") and len(slack.calls_to("chat.startStream")) == 1
    [update] = slack.calls_to("chat.update")
    assert update.args["ts"] == reply.ts and replies(slack) == [reply]
    assert reply.blocks[0] == {"type": "markdown", "text": w.raw + "\n\n_⚠️ Stopped by Ada._"}
    assert action_ids(reply.blocks) == [FEEDBACK_ACTION, REGENERATE_ACTION]
    assert w.parts == [reply.ts]
    await w._writers.close(grace=10)
    assert_counts_back_to_zero(api)


async def test_a_stop_found_by_the_final_append_is_raised_by_finish(slack: fs.FakeSlack, api: SlackApi) -> None:
    w = writer(api, "native", min_interval=60)  # after the first text, only the final append
    await w.start()
    w.append("first ")
    await until(lambda: replies(slack) and replies(slack)[0].text, message="the first append")
    [reply] = replies(slack)
    w.append("and the rest")
    slack.stop_stream_by_user(CHANNEL, reply.ts, "U0ADA")
    with pytest.raises(AnswerStopped):
        await w.finish()
    assert w.raw == "first " == reply.text
    await w.finish(["Stopped."], retry=True)
    assert reply.blocks_text() == "first \n\n_⚠️ Stopped._"
    assert action_ids(reply.blocks) == [FEEDBACK_ACTION, RETRY_ACTION]
    assert_counts_back_to_zero(api)


async def test_a_stop_pressed_after_the_whole_text_still_gets_the_controls(slack: fs.FakeSlack, api: SlackApi) -> None:
    slack.limits["chat.stopStream"] = (0, 60.0)  # our stop waits (Tier 2) while the person presses theirs
    w = writer(api, "native")
    await w.start()
    w.append("all of it")
    await w.finish()
    [reply] = replies(slack)
    slack.stop_stream_by_user(CHANNEL, reply.ts, "U0ADA")
    slack.limits.pop("chat.stopStream")
    api.pacer(TEAM).budget._blocked_until.clear()
    await w._writers.close(grace=10)
    assert reply.text == "all of it" and action_ids(reply.blocks) == [FEEDBACK_ACTION, REGENERATE_ACTION]
    assert_counts_back_to_zero(api)


async def test_a_stream_that_expired_while_its_stop_waited_still_gets_the_controls(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    slack.limits["chat.stopStream"] = (0, 60.0)  # our stop waits (Tier 2) while Slack's five minutes run out
    w = writer(api, "native")
    await w.start()
    w.append("all of it")
    await w.finish()
    [reply] = replies(slack)
    slack.stream_ttl = 0.0  # expired: the stop, when it goes, answers message_not_in_streaming_state
    slack.limits.pop("chat.stopStream")
    api.pacer(TEAM).budget._blocked_until.clear()
    await w._writers.close(grace=10)
    assert [c.error for c in slack.calls_to("chat.stopStream")][-1] == "message_not_in_streaming_state"
    assert reply.text == "all of it" and action_ids(reply.blocks) == [FEEDBACK_ACTION, REGENERATE_ACTION]
    assert_counts_back_to_zero(api)


# answers re-written in place ------------------------------------------------------------------------------


async def old_answer(slack: fs.FakeSlack, api: SlackApi, words: int = 1_200) -> list[str]:
    """A finished answer of several chat.update messages; the ts of each."""
    w = writer(api, "update")
    await w.start()
    w.append(" ".join(f"old{i:05d}" for i in range(words)))
    await w.finish()
    assert len(w.parts) == len(replies(slack)) >= 2
    slack.calls.clear()
    return w.parts


@pytest.mark.parametrize("mode", ["update", "native"])
async def test_a_regenerated_answer_is_written_into_the_old_message_and_the_rest_removed(
    slack: fs.FakeSlack, api: SlackApi, mode: str
) -> None:
    old = await old_answer(slack, api)
    w = writer(api, mode, reuse=old)
    await w.start()
    [first] = replies(slack)  # the others are gone
    assert first.ts == old[0] and first.text == THINKING and action_ids(first.blocks) == [STOP_ACTION]
    assert slack.status_of(CHANNEL, THREAD) == THINKING_STATUS
    assert sorted(c.args["ts"] for c in slack.calls_to("chat.delete")) == sorted(old[1:])
    await write(w, WORDS)
    await until(lambda: slack.status_of(CHANNEL, THREAD) == "", message="the state cleared once text showed")
    await w.finish()
    await w._writers.close(grace=10)
    assert replies(slack) == [first] and w.parts == [old[0]]
    assert first.blocks_text() == "".join(WORDS).strip()
    assert action_ids(first.blocks) == [FEEDBACK_ACTION, REGENERATE_ACTION]
    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.startStream")
    assert [c.args["status"] for c in slack.calls_to(METHOD)] == [THINKING_STATUS, ""]
    assert_counts_back_to_zero(api)


async def test_a_long_regenerated_answer_continues_in_new_messages(slack: fs.FakeSlack, api: SlackApi) -> None:
    old = await old_answer(slack, api, words=400)
    w = writer(api, "update", reuse=old)
    await w.start()
    new = " ".join(f"new{i:05d}" for i in range(1_000))
    w.append(new)
    await w.finish()
    messages = replies(slack)
    assert messages[0].ts == old[0] and len(messages) >= 3 and w.parts == [m.ts for m in messages]
    assert " ".join(m.blocks_text() for m in messages).split() == new.split()
    assert action_ids(messages[-1].blocks) == [FEEDBACK_ACTION, REGENERATE_ACTION]
    assert_counts_back_to_zero(api)


async def test_a_regenerated_answer_whose_old_message_is_gone_is_answered_anew(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    old = await old_answer(slack, api)
    del slack.messages[(CHANNEL, old[0])]  # someone deleted it meanwhile
    w = writer(api, "update", reuse=old)
    await w.start()
    assert not replies(slack) and slack.status_of(CHANNEL, THREAD) == THINKING_STATUS
    w.append("a new answer")
    await w.finish()
    [reply] = replies(slack)
    assert reply.ts not in old and reply.blocks_text() == "a new answer" and w.parts == [reply.ts]
    assert_counts_back_to_zero(api)


async def test_an_aborted_regeneration_clears_the_loading_state(slack: fs.FakeSlack, api: SlackApi) -> None:
    old = await old_answer(slack, api)
    w = writer(api, "update", reuse=old)
    await w.start()
    await w.abort()
    assert slack.status_of(CHANNEL, THREAD) == ""
    assert_counts_back_to_zero(api)
