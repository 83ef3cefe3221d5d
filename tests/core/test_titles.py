from __future__ import annotations

import pytest

from bot.core.titles import FALLBACK_TITLE, TITLE_CHARS, plain_line, shorten, thread_title

LONG = "How do I configure the staging deployment so that it uses the new database credentials safely?"


@pytest.mark.parametrize(
    "question,title",
    [
        ("What is a monad?", "What is a monad?"),
        ("<@U0BOT> what is a monad?", "what is a monad?"),
        ("<@U0BOT>\n\n  Explain   *async*\tin _Python_  \nsecond line", "Explain async in Python"),
        ("hey <!here> look at <#C1|general>", "hey look at #general"),
        ("read <https://example.com/a|the docs> and <https://example.com/b>", "read the docs and https://example.com/b"),
        ("write to <mailto:ada@example.com|Ada>", "write to Ada"),
        ("fish &amp; chips &lt;3", "fish & chips <3"),
        ("> quoted question\nmore", "quoted question"),
        ("```\nprint('hi')\n```", "print('hi')"),
        ("keep snake_case_names and ~strike~", "keep snake_case_names and strike"),
        (LONG, "How do I configure the staging deployment so that it uses…"),
        ("x" * 100, "x" * (TITLE_CHARS - 1) + "…"),
        ("", FALLBACK_TITLE),
        ("   \n <@U0BOT> \n", FALLBACK_TITLE),
        ("**", FALLBACK_TITLE),
    ],
)
def test_thread_title(question: str, title: str) -> None:
    assert thread_title(question) == title
    assert len(thread_title(question)) <= TITLE_CHARS


@pytest.mark.parametrize(
    "text,limit,expected",
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("one two three four", 10, "one two…"),
        ("one two, three", 10, "one two…"),  # no comma before the ellipsis
        ("abcdefghijkl", 5, "abcd…"),
    ],
)
def test_shorten_cuts_at_a_word(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= limit


def test_plain_line_is_empty_for_markup_only() -> None:
    assert plain_line("<@U1> <!channel>") == ""
