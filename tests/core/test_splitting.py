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


@pytest.mark.parametrize(
    "raw,sent,age,expected",
    [
        ("aaaa bbbb cccc", 5, 10.0, None),  # young: it keeps streaming
        ("aaaa bbbb cccc", 5, 240.0, (5, 5)),  # old: it ends with what it shows (a whole word), the rest follows
        ("aaaa\nbbbb cccc", 5, 300.0, (5, 5)),  # what it shows ends with a line
        ("aaaa bbbb cccc", 2, 240.0, (4, 5)),  # it shows part of a word: that word ends it
        ("aaaa bbbb", 7, 240.0, None),  # no word has ended since: wait for one
        ("aaaa bbbb ", 5, 240.0, (5, 5)),
        ("aaaa ", 5, 240.0, None),  # nothing more to show: no new message for nothing
        ("aaaa   ", 5, 240.0, None),
        ("aaaa bbbb", 0, 240.0, None),  # it shows nothing yet
    ],
)
def test_when_an_old_stream_rolls_over(raw: str, sent: int, age: float, expected: object) -> None:
    from bot.core.splitting import stream_rollover

    assert stream_rollover(raw, sent=sent, age=age, max_age=240.0) == expected


@pytest.mark.parametrize(
    "markdown,sent,final,limit,expected",
    [
        ("aaaa bbbb cc", 0, False, 100, 10),  # whole words only: "cc" may be the start of a longer word
        ("aaaa bbbb cc", 0, True, 100, 12),  # the final text goes out to its end
        ("aaaa bbbb\ncc", 0, False, 100, 10),  # a line ends a word too
        ("aaaa bbbb cc", 10, False, 100, 10),  # only part of a word is new: nothing to append yet
        ("aaaa bbbb cc", 5, False, 100, 10),
        ("aaaa bbbb cccc dddd", 0, False, 12, 10),  # at most `limit` characters, still in whole words
        ("aaaa bbbb cccc dddd", 0, True, 12, 10),  # the final text too, when it takes several appends
        ("a" * 20, 0, False, 12, 12),  # a run of `limit` characters without a space goes as it is
        ("a" * 20, 0, True, 12, 12),
        ("a" * 10, 0, False, 12, 0),  # a shorter one waits for its end
        ("```\ncode", 0, False, 100, 4),  # a reopened fence ends with a line
    ],
)
def test_how_far_a_stream_append_reaches(markdown: str, sent: int, final: bool, limit: int, expected: int) -> None:
    from bot.core.splitting import stream_append_end

    assert stream_append_end(markdown, sent=sent, final=final, limit=limit) == expected


@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_whole_word_appends_and_rollovers_lose_and_split_nothing(chunk: int) -> None:
    """A stream fed `chunk` characters at a time, rolled over after each append: every message holds whole
    words, and together they hold the text exactly once."""
    from bot.core.splitting import stream_append_end, stream_rollover

    text = " ".join(f"w{i:03d}" for i in range(200)) + "\nend"
    messages: list[str] = []
    start, sent = 0, 0
    for arrived in [*range(chunk, len(text), chunk), len(text)]:
        rest = text[start:arrived]
        final = arrived == len(text)
        sent = stream_append_end(rest, sent=sent, final=final, limit=40)
        cut = None if final else stream_rollover(rest, sent=sent, age=1.0, max_age=0.0)
        if cut:
            messages.append(rest[: cut[0]])
            start, sent = start + cut[1], 0
    messages.append(text[start:])
    assert " ".join(messages).split() == text.split()


def test_a_chat_update_part_and_its_cursor_fit_one_section_block() -> None:
    """Every edited message carries its text in a section (under 3,001 characters), cursor included."""
    from bot.core.splitting import MESSAGE_LIMIT
    from bot.slack.blocks import SECTION_LIMIT
    from bot.slack.parts import CURSOR

    assert MESSAGE_LIMIT + len(CURSOR) <= SECTION_LIMIT
    text = "intro\n```\n" + "\n".join(f"line {i} " + "x" * 40 for i in range(300)) + "\n```\n" + "word " * 2_000
    parts = split_all(text)
    assert len(parts) > 3 and all(len(p.text) <= MESSAGE_LIMIT for p in parts)
