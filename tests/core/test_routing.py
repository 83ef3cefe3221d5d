from __future__ import annotations

import contextlib
import importlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.routing import Action, Incoming, classify_event

BOT = "U0BOT"

# Hypothesis looks numpy up in sys.modules as it draws; the bot's tokenizer imports numpy in a thread. Imported
# here, at collection, it is never found half-imported.
with contextlib.suppress(ImportError):
    importlib.import_module("numpy")


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


# Slack's payloads are JSON from the network: every field may have the wrong type, and none may raise.
@pytest.mark.parametrize(
    "event,expected",
    [
        ({**msg(text=f"<@{BOT}> hi"), "type": "app_mention", "subtype": ["bot_message"]}, Action.IGNORE),
        (msg(type=["message"]), Action.IGNORE),
        (msg(subtype={"a": 1}), Action.IGNORE),
        (msg(channel=7, text=f"<@{BOT}> hi"), Action.IGNORE),
        (msg(ts=1.5, text=f"<@{BOT}> hi"), Action.IGNORE),
        (msg(user=["U1"], text=f"<@{BOT}> hi"), Action.IGNORE),
        (msg(text={"rich": "text"}, channel_type="im"), Action.ANSWER),  # answered as a bare mention
        (msg(thread_ts=["0.5"], text=f"<@{BOT}> hi"), Action.ANSWER),  # a top-level message, then
        (msg(channel_type=["im"], text=f"<@{BOT}> hi"), Action.ANSWER),
        (msg(team=["T9"], text=f"<@{BOT}> hi"), Action.ANSWER),
        ({"type": "message", "subtype": "message_changed", "channel": "C1", "message": "edited"}, Action.IGNORE),
        ({"type": "message", "subtype": "message_changed", "channel": "C1", "message": [1]}, Action.IGNORE),
        ({"type": "message", "subtype": "message_deleted", "channel": "C1", "deleted_ts": 1.1}, Action.IGNORE),
        (
            {"type": "message", "subtype": "message_deleted", "channel": "C1", "previous_message": ["x"]},
            Action.IGNORE,
        ),
        (
            {
                "type": "message",
                "subtype": "message_deleted",
                "channel": "C1",
                "deleted_ts": "1.1",
                "previous_message": {"user": {"id": "U1"}, "text": 5, "ts": "1.1"},
            },
            Action.DELETE,
        ),
    ],
)
def test_wrong_types_are_ignored_or_read_safely(event: dict[str, Any], expected: Action) -> None:
    decision = classify_event(event, team_id="T1", bot_user_id=BOT)
    assert decision.action is expected
    if decision.message is not None:
        assert_well_typed(decision.message)


@pytest.mark.parametrize("team_id", [["T1"], 5, None, ""])
def test_a_team_id_of_the_wrong_type_falls_back_to_the_events_team(team_id: Any) -> None:
    decision = classify_event(msg(text=f"<@{BOT}> hi", team="T2"), team_id=team_id, bot_user_id=BOT)
    assert decision.message is not None and decision.message.team_id == "T2"


def assert_well_typed(message: Incoming) -> None:
    for name in ("team_id", "channel_id", "ts", "thread_ts", "user_id", "text", "channel_type"):
        assert isinstance(getattr(message, name), str), name


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
field_values = json_values | st.sampled_from(["message", "app_mention", "message_changed", "message_deleted"])
event_fields = st.sampled_from(
    ["type", "subtype", "channel", "user", "text", "ts", "thread_ts", "channel_type", "team", "bot_id", "message",
     "previous_message", "deleted_ts"]
)


@settings(max_examples=300, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(
        [msg(), msg(type="app_mention"), msg(subtype="message_changed"), msg(subtype="message_deleted")]
    ),
    junk=st.dictionaries(event_fields, field_values, max_size=6),
    team_id=json_values,
)
def test_classify_event_never_raises_and_returns_well_typed_messages(
    base: dict[str, Any], junk: dict[str, Any], team_id: Any
) -> None:
    decision = classify_event({**base, **junk}, team_id=team_id, bot_user_id=BOT)
    if decision.message is not None:
        assert_well_typed(decision.message)
