from __future__ import annotations

from typing import Any

import pytest

from bot.core.routing import Action, classify_event

BOT = "U0BOT"


def msg(**fields: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": "C1",
        "user": "U1",
        "text": "hi",
        "ts": "1.000001",
        "channel_type": "channel",
        **fields,
    }


@pytest.mark.parametrize(
    "event,expected",
    [
        (msg(), Action.IGNORE),  # channel chatter
        (msg(text=f"<@{BOT}> hi"), Action.ANSWER),  # a mention delivered as a message
        ({**msg(text=f"<@{BOT}> hi"), "type": "app_mention"}, Action.ANSWER),
        (msg(thread_ts="0.5"), Action.ANSWER_IF_KNOWN),  # a thread reply
        (msg(channel="D1", channel_type="im"), Action.ANSWER),  # a DM
        (msg(channel="D1", channel_type="im", thread_ts="0.5"), Action.ANSWER),
        (msg(channel="G1", channel_type="mpim"), Action.IGNORE),  # group DM without a mention
        (msg(text=f"<@{BOT}> hi", bot_id="B1"), Action.IGNORE),  # another bot
        (msg(user=BOT, channel_type="im"), Action.IGNORE),  # ourselves
        (msg(subtype="channel_join", text=f"<@{BOT}> joined"), Action.IGNORE),
        (msg(subtype="bot_message"), Action.IGNORE),
        (msg(subtype="thread_broadcast", thread_ts="0.5"), Action.ANSWER_IF_KNOWN),
        (msg(subtype="file_share", channel_type="im"), Action.ANSWER),
        (
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C1",
                "message": {"user": "U1", "text": "edited", "ts": "1.1"},
            },
            Action.EDIT,
        ),
        (
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C1",
                "message": {"user": BOT, "text": "our own edit", "ts": "1.1"},
            },
            Action.IGNORE,
        ),
        (
            {
                "type": "message",
                "subtype": "message_deleted",
                "channel": "C1",
                "deleted_ts": "1.1",
                "previous_message": {"user": "U1", "text": "x", "ts": "1.1"},
            },
            Action.DELETE,
        ),
        ({"type": "message", "channel": "C1"}, Action.IGNORE),  # malformed: no ts, no user
        ({"type": "reaction_added"}, Action.IGNORE),
    ],
)
def test_classify_event(event: dict[str, Any], expected: Action) -> None:
    assert classify_event(event, team_id="T1", bot_user_id=BOT).action is expected


def test_thread_key_of_a_top_level_message_is_its_own_ts() -> None:
    decision = classify_event(msg(text=f"<@{BOT}> hi"), team_id="T1", bot_user_id=BOT)
    assert decision.message is not None
    assert decision.message.thread_ts == "1.000001" and not decision.message.in_thread


def test_app_mention_without_channel_type_is_typed_from_the_channel_id() -> None:
    event = {"type": "app_mention", "channel": "G1", "user": "U1", "text": f"<@{BOT}>", "ts": "2.0"}
    decision = classify_event(event, team_id="T1", bot_user_id=BOT)
    assert decision.message is not None and decision.message.channel_type == "group"
