from __future__ import annotations

import pytest

from bot.core.splitting import render_part, split_all, split_head


def test_short_text_is_not_split() -> None:
    assert split_head("hello", limit=100) is None
    assert [p.text for p in split_all("hello", limit=100)] == ["hello"]


@pytest.mark.parametrize(
    "text,limit,head",
    [
        ("aaaa bbbb\n\ncccc dddd", 15, "aaaa bbbb"),  # a paragraph break wins
        ("aaaa bbbb\ncccc dddd", 15, "aaaa bbbb"),  # else a line break
        ("aaaa bbbb cccc dddd", 15, "aaaa bbbb cccc"),  # else a word break
        ("a" * 30, 10, "a" * 10),  # else a hard cut
    ],
)
def test_split_prefers_the_best_boundary(text: str, limit: int, head: str) -> None:
    split = split_head(text, limit=limit)
    assert split is not None and split[0] == head


def test_no_text_is_lost_or_repeated() -> None:
    words = [f"w{i}" for i in range(2000)]
    text = " ".join(words)
    parts = split_all(text, limit=300)
    assert all(len(p.text) <= 300 for p in parts)
    assert " ".join(p.text for p in parts).split() == words


def test_escaping_that_lengthens_text_still_fits() -> None:
    text = "<>&" * 200
    parts = split_all(text, limit=100)
    assert all(len(p.text) <= 100 for p in parts)
    assert "".join(p.text for p in parts) == "&lt;&gt;&amp;" * 200


def test_code_blocks_are_closed_and_reopened_across_parts() -> None:
    text = "intro\n```\n" + "\n".join(f"line {i}" for i in range(100)) + "\n```\noutro"
    parts = split_all(text, limit=200)
    assert len(parts) > 2
    assert all(p.text.count("```") % 2 == 0 for p in parts)
    assert parts[1].text.startswith("```\n")
    joined = "\n".join(p.text for p in parts)
    assert all(joined.count(f"line {i}\n") == 1 for i in range(99))


def test_a_cut_chosen_while_streaming_stays_the_same_as_more_text_arrives() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    first = None
    for end in range(0, len(text), 37):
        split = split_head(text[:end], limit=500)
        if split is not None:
            first = first or split[0]
            assert split[0] == first


def test_render_part_marks_fence_state() -> None:
    assert render_part("```\ncode").ends_in_code
    assert render_part("more\n```", opens_in_code=True).text == "```\nmore\n```"


@pytest.mark.parametrize(
    "raw,sent,soft,hard,expected",
    [
        ("short", 0, 20, 30, None),  # fits: keeps streaming
        ("aaaaaa bbbb\n\ncccc dddd eeee", 0, 20, 30, (11, 13)),  # a paragraph break before the soft limit
        ("aaaaaa bbbb\ncccc dddd eeee", 0, 20, 30, (11, 12)),  # else a line break
        ("aaaa\n\nbbbb cccc dddd eeee", 0, 20, 30, (20, 21)),  # not in the first half of the message
        ("aaaa bbbb cccc dddd eeee", 0, 20, 30, (19, 20)),  # else a word break
        ("aaaa bbbb cccc dddd eeee", 21, 20, 30, None),  # all boundaries already sent; wait up to hard
        ("a" * 25, 0, 20, 30, None),  # no boundary yet, under the hard limit
        ("a" * 35, 0, 20, 30, (30, 30)),  # no boundary at all: cut at the hard limit
        ("a" * 24 + " " + "b" * 10, 0, 20, 30, (24, 25)),  # a boundary between soft and hard
        ("aaaaaa bbbb\n\ncccc dddd eeee", 12, 20, 30, (12, 13)),  # never cut before what was sent
    ],
)
def test_where_a_streamed_message_ends(raw: str, sent: int, soft: int, hard: int, expected: object) -> None:
    from bot.core.splitting import stream_cut

    assert stream_cut(raw, sent=sent, soft=soft, hard=hard) == expected
