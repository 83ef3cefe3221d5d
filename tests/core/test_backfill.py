from __future__ import annotations

from typing import Any

import pytest

from bot.core.backfill import EarlierMessage, earlier_messages

BOT = "U0BOT"
ASKED = "1700000200.000001"


def ts(n: int) -> str:
    return f"1700000{n:03d}.000001"


@pytest.mark.parametrize(
    "entries,expected",
    [
        ([], []),
        (
            [{"ts": ts(100), "user": "U0ADA", "text": "root"}, {"ts": ts(150), "user": "U0BOB", "text": "reply"}],
            [EarlierMessage("user", "root", ts(100), "U0ADA"), EarlierMessage("user", "reply", ts(150), "U0BOB")],
        ),
        # the bot's own messages are its earlier answers
        ([{"ts": ts(100), "user": BOT, "bot_id": "B0BOT", "text": "hi"}], [EarlierMessage("assistant", "hi", ts(100))]),
        # other bots' and apps' messages are not part of the conversation
        ([{"ts": ts(100), "user": "U0APP", "bot_id": "B0APP", "text": "deploy done"}], []),
        ([{"ts": ts(100), "bot_id": "B0APP", "text": "no user"}], []),
        # the question being answered, and anything after it, is not "earlier"
        ([{"ts": ASKED, "user": "U0ADA", "text": "the question"}, {"ts": ts(300), "user": "U0ADA", "text": "x"}], []),
        # empty texts (file shares, say) say nothing
        ([{"ts": ts(100), "user": "U0ADA", "text": ""}], []),
    ],
)
def test_earlier_messages_of_a_thread(entries: list[dict[str, Any]], expected: list[EarlierMessage]) -> None:
    assert earlier_messages({"ok": True, "messages": entries}, before_ts=ASKED, bot_user_id=BOT) == expected


GOOD = {"ts": ts(100), "user": "U0ADA", "text": "kept"}


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "text",
        42,
        ["ts", "text"],
        {"ts": 1700000100.000001, "user": "U0ADA", "text": "a float ts"},
        {"user": "U0ADA", "text": "no ts"},
        {"ts": ts(101), "user": "U0ADA"},
        {"ts": ts(101), "user": "U0ADA", "text": None},
        {"ts": ts(101), "user": "U0ADA", "text": {"rich": "text"}},
        {"ts": ts(101), "user": 7, "text": "a number for a user"},
        {"ts": ts(101), "text": "nobody wrote this"},
    ],
)
def test_malformed_entries_are_skipped(entry: Any) -> None:
    payload = {"messages": [entry, GOOD]}
    assert earlier_messages(payload, before_ts=ASKED, bot_user_id=BOT) == [
        EarlierMessage("user", "kept", ts(100), "U0ADA")
    ]


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"ok": False, "error": "ratelimited"}, {"messages": None}, {"messages": "nope"}, {"messages": {}}, []],
)
def test_a_payload_without_a_message_list_reads_as_nothing(payload: Any) -> None:
    assert earlier_messages(payload, before_ts=ASKED, bot_user_id=BOT) == []
