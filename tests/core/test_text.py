from __future__ import annotations

import pytest

from bot.core.mrkdwn import to_mrkdwn
from bot.core.prefix import PrefixedAnswer
from bot.core.slack_text import readable, strip_leading_mention, user_ids


@pytest.mark.parametrize(
    "markdown,expected",
    [
        ("**bold** and *italic*", "*bold* and _italic_"),
        ("__bold__", "*bold*"),
        ("~~gone~~", "~gone~"),
        ("# Title", "*Title*"),
        ("### **Sub** title", "*Sub title*"),
        ("- one\n- two", "• one\n• two"),
        ("  - nested", "    ◦ nested"),
        ("1. first", "1. first"),
        ("[Mistral](https://mistral.ai)", "<https://mistral.ai|Mistral>"),
        ("![alt](https://x.io/a.png)", "<https://x.io/a.png|alt>"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("`**not bold**`", "`**not bold**`"),
        ("```python\nx = 1 < 2  # **no**\n```", "```\nx = 1 &lt; 2  # **no**\n```"),
        ("> quoted **text**", "&gt; quoted *text*"),
        ("---", "──────────"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("snake_case_name", "snake_case_name"),
        ("emoji 🎉 and 日本語", "emoji 🎉 and 日本語"),
    ],
)
def test_markdown_to_mrkdwn(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown)[0] == expected


def test_control_characters_the_conversion_uses_as_placeholders_are_dropped_not_misread() -> None:
    # A link is held out of the formatting as \x01N\x01 and bold as \x00: a model's text with those characters
    # (invisible in Slack) must neither point at a link that is not there nor turn into a star.
    assert to_mrkdwn("see [a](http://x) and \x015\x01")[0] == "see <http://x|a> and 5"
    assert to_mrkdwn("a\x00b **c**")[0] == "ab *c*"


def test_rendering_a_finished_line_never_changes_as_text_streams_in() -> None:
    text = "# Head\n- **a** item\n```\ncode *x*\n```\nend [l](http://u)"
    lines_final = to_mrkdwn(text)[0].split("\n")
    for cut in range(len(text)):
        partial = text[:cut]
        complete_lines = partial.count("\n")
        assert to_mrkdwn(partial)[0].split("\n")[:complete_lines] == lines_final[:complete_lines]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("<@U1> hi <@U2|bob>", "@Ada hi @Bob"),
        ("see <#C1|general> and <#C2>", "see #general and #C2"),
        ("<https://a.io|A site> <https://b.io>", "A site (https://a.io) https://b.io"),
        ("<mailto:a@b.c|a@b.c>", "a@b.c"),
        ("<!here> <!channel> <!subteam^S1|@devs>", "@here @channel @devs"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
        ("<@U0BOT> what?", "@assistant what?"),
    ],
)
def test_readable(text: str, expected: str) -> None:
    assert readable(text, names={"U1": "Ada", "U2": "Bob"}, bot_user_id="U0BOT") == expected


def test_user_ids_and_leading_mention() -> None:
    assert user_ids("<@U1> and <@W2|x> and <#C3>") == {"U1", "W2"}
    assert strip_leading_mention("<@U0BOT>, help me", "U0BOT") == "help me"
    assert strip_leading_mention("ask <@U0BOT> later", "U0BOT") == "ask <@U0BOT> later"
    assert strip_leading_mention("  <@U0BOT>  ", "U0BOT") == ""


@pytest.mark.parametrize(
    "prefix,chunks,expected",
    [
        ("Sure:", ["Su", "re: yes"], "Sure: yes"),  # echoed across chunks: shown once
        ("Sure:", [" yes"], "Sure: yes"),  # not echoed: added once
        ("Sure:", ["Sur"], "Sure:"),  # stream ended inside the echo
        (None, ["a", "b"], "ab"),
    ],
)
def test_prefix_is_shown_exactly_once(prefix: str | None, chunks: list[str], expected: str) -> None:
    answer = PrefixedAnswer(prefix)
    assert "".join(answer.feed(c) for c in chunks) + answer.flush() == expected
