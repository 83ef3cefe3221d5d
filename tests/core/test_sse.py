from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.sse import Delta, Finish, SSEParser, parse_chunk, read_chunk

STREAM = (
    b'data: {"id":"1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],'
    b'"p":"x"}\n\n'
    b": keep-alive\n\n"
    b'data: {"id":"1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"p":"abcdef"}\n\n'
    b'data: {"id":"1","choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[]},'
    b'{"type":"text","text":"lo"}]},"finish_reason":null}]}\n\n'
    b'data: {"id":"1","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    b"data: [DONE]\n\n"
)


def test_a_real_looking_stream() -> None:
    parser = SSEParser()
    items = []
    done = False
    for line in STREAM.decode().split("\n"):
        data = parser.feed(line)
        if data is None:
            continue
        if data == "[DONE]":
            done = True
            break
        items.extend(parse_chunk(data))
    assert done
    assert items == [Delta("Hel"), Delta("lo"), Finish("stop", 5, 2, 7)]


def test_multi_line_data_and_crlf() -> None:
    parser = SSEParser()
    assert parser.feed('data: {"a":\r') is None
    assert parser.feed("data: 1}\r") is None
    assert json.loads(parser.feed("\r") or "") == {"a": 1}


@pytest.mark.parametrize("data", ["[1,2]", "not json", '{"choices":[]} {}', '{"choices":[]}x', '{"choices":', ""])
def test_malformed_chunks_raise_value_error(data: str) -> None:
    with pytest.raises(ValueError):
        parse_chunk(data)


@pytest.mark.parametrize("padding", [("  ", ""), ("", "\t\n"), (" ", " ")])
def test_whitespace_around_a_chunk_is_allowed(padding: tuple[str, str]) -> None:
    before, after = padding
    assert parse_chunk(before + '{"choices":[{"delta":{"content":"x"}}]}' + after) == [Delta("x")]


def test_unknown_keys_and_missing_choices_are_ignored() -> None:
    assert parse_chunk('{"p":"pad","choices":[]}') == []
    assert parse_chunk('{"choices":[{"delta":{"content":"x","tool_calls":null},"extra":1}]}') == [Delta("x")]


@pytest.mark.parametrize("cut", [1, 2, 7, 13, 30, 31, 32, 33, 64])
def test_bytes_cut_anywhere_give_the_same_events(cut: int) -> None:
    stream = 'data: {"a": "ü🧀"}\n\n: keep-alive\n\ndata: [DONE]\r\n\r\n'.encode()
    parser = SSEParser()
    events = []
    for start in range(0, len(stream), cut):
        events.extend(parser.feed_bytes(stream[start : start + cut]))
    assert events == ['{"a": "ü🧀"}', "[DONE]"]


MIXED = (
    b'data: {"n": 1}\n\n'
    b": keep-alive\n\n"
    b'data: {"n":\ndata: 2}\n\n'  # one event over two data lines
    b"event: ping\ndata: 3\n\n"
    b'data: {"n": 4}\r\n\r\n'  # CRLF line ends
    b'data:{"n": 5}\n\n'  # no space after the colon
    b"data: [DONE]\n\n"
)
MIXED_EVENTS = ['{"n": 1}', '{"n":\n2}', "3", '{"n": 4}', '{"n": 5}', "[DONE]"]


@given(st.lists(st.integers(min_value=0, max_value=len(MIXED)), max_size=12))
def test_any_split_of_a_mixed_stream_gives_its_events(cuts: list[int]) -> None:
    # The one-line fast path and the line-by-line path must hand over state wherever a read ends.
    bounds = [0, *sorted(cuts), len(MIXED)]
    parser = SSEParser()
    events = []
    for start, end in itertools.pairwise(bounds):
        events.extend(parser.feed_bytes(MIXED[start:end]))
    assert events == MIXED_EVENTS


def test_read_chunk_gives_text_and_finish_in_one_pass() -> None:
    assert read_chunk('{"choices":[{"delta":{"content":"hi"}}]}') == ("hi", None)
    text, finish = read_chunk('{"choices":[{"delta":{"content":""},"finish_reason":"length"}],"usage":{}}')
    assert (text, finish) == ("", Finish("length"))


@pytest.mark.parametrize(
    ("usage", "cached"),
    [
        ({"prompt_tokens": 90, "prompt_tokens_details": {"cached_tokens": 64}}, 64),
        ({"prompt_tokens": 90, "num_cached_tokens": 32}, 32),
        ({"prompt_tokens_details": {"cached_tokens": 0}, "num_cached_tokens": 5}, 0),
        ({"prompt_tokens_details": {"cached_tokens": None}, "num_cached_tokens": 5}, 5),
        ({"prompt_tokens": 90}, None),
        ({"prompt_tokens_details": None}, None),
        ({"prompt_tokens_details": {"cached_tokens": "64"}}, None),
        ({"prompt_tokens_details": {"cached_tokens": True}}, None),
        ({"prompt_tokens_details": {"cached_tokens": -1}}, None),
        ({"prompt_tokens_details": [64]}, None),
    ],
)
def test_cached_prompt_tokens_are_read_wherever_the_api_puts_them(usage: dict, cached: int | None) -> None:
    payload = {"choices": [{"delta": {"content": ""}, "finish_reason": "stop"}], "usage": usage}
    _, finish = read_chunk(json.dumps(payload))
    assert finish is not None and finish.cached_tokens == cached


def test_a_usage_that_is_not_an_object_is_ignored() -> None:
    _, finish = read_chunk('{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":[1,2]}')
    assert finish == Finish("stop")
