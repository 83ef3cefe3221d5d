from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core.home_view import (
    MAX_BLOCKS,
    ChannelLine,
    ThreadLine,
    escape,
    home_view,
    thread_link,
    when,
)

URL = "https://acme.slack.com/"
T = 1_700_000_000.0


def texts(view: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in view["blocks"] if "text" in b]


def all_text(view: dict[str, Any]) -> str:
    return "\n".join(texts(view))


@pytest.mark.parametrize(
    "url,channel,ts,link",
    [
        (URL, "C1", "1700000000.000100", "https://acme.slack.com/archives/C1/p1700000000000100"),
        ("https://acme.slack.com", "D1", "1.2", "https://acme.slack.com/archives/D1/p12"),
        (None, "C1", "1.2", "https://slack.com/app_redirect?channel=C1"),
        ("", "C1", "1.2", "https://slack.com/app_redirect?channel=C1"),
    ],
)
def test_thread_link(url: str | None, channel: str, ts: str, link: str) -> None:
    assert thread_link(url, channel, ts) == link


@pytest.mark.parametrize("text,escaped", [("a & b", "a &amp; b"), ("<@U1> > x", "&lt;@U1&gt; &gt; x"), ("", "")])
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


def test_when_lets_slack_show_local_time_with_a_utc_fallback() -> None:
    assert when(T) == "<!date^1700000000^{date_short_pretty} at {time}|2023-11-14 22:13 UTC>"


@pytest.mark.parametrize(
    "threads,channels,present,absent",
    [
        # nothing yet: the instructions, and empty states
        ([], [], ["None yet", "not answering in any channel yet", "/persona", "Summarize thread", "<@U0BOT>"], []),
        # a channel conversation: a link to its thread, its channel, the question cleaned and escaped
        (
            [ThreadLine("C1", "1700000000.000100", "<@U0BOT> is 1 < 2 & *true*?", T)],
            [],
            ["<https://acme.slack.com/archives/C1/p1700000000000100|is 1 &lt; 2 &amp; true?> in <#C1>"],
            ["None yet", "<@U0BOT> is"],
        ),
        # a DM conversation says so instead of naming the channel
        ([ThreadLine("D1", "1.2", "hello", T)], [], ["|hello> in a DM"], ["<#D1>"]),
        # an empty question still gets a label
        ([ThreadLine("C1", "1.2", "<@U0BOT>", T)], [], ["|(no text)>"], []),
        # a long question is cut at a word
        ([ThreadLine("C1", "1.2", "word " * 40, T)], [], ["word word…>"], ["word " * 20]),
        # channels: named, custom and default personas with their models; DMs stay private
        (
            [],
            [
                ChannelLine("C1", "support", "mistral-large-latest"),
                ChannelLine("C2", "custom", "mistral-small-latest"),
                ChannelLine("C3", "default", "m<x>"),
                ChannelLine("D9", "default", "mistral-small-latest"),
            ],
            [
                "• <#C1>: `support` persona, model `mistral-large-latest`",
                "• <#C2>: custom persona, model `mistral-small-latest`",
                "• <#C3>: default persona, model `m&lt;x&gt;`",
            ],
            ["D9", "not answering in any channel"],
        ),
        # the feedback people gave on a channel's answers, where there is some
        (
            [],
            [ChannelLine("C1", "default", "m", good=3, bad=1), ChannelLine("C2", "default", "m")],
            ["• <#C1>: default persona, model `m` · 👍 3 👎 1"],
            ["• <#C2>: default persona, model `m` ·"],
        ),
    ],
)
def test_home_view(
    threads: list[ThreadLine], channels: list[ChannelLine], present: list[str], absent: list[str]
) -> None:
    view = home_view(bot_user_id="U0BOT", threads=threads, channels=channels, workspace_url=URL)
    assert view["type"] == "home"
    text = all_text(view)
    for fragment in present:
        assert fragment in text
    for fragment in absent:
        assert fragment not in text


def test_the_view_keeps_slacks_limits_however_much_there_is() -> None:
    threads = [ThreadLine(f"C{i}", f"{i}.0001", "é" * 5_000 + " <&>" * 500, T) for i in range(200)]
    channels = [ChannelLine(f"C{i}", "p" * 3_000, "m" * 3_000) for i in range(500)]
    view = home_view(bot_user_id="U0BOT", threads=threads, channels=channels, workspace_url=URL)
    assert len(view["blocks"]) <= MAX_BLOCKS
    for block in view["blocks"]:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) < 3_000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
    assert len(json.dumps(view).encode()) < 250_000
