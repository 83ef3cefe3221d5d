from __future__ import annotations

import json

import pytest

from bot.core.sse import Delta, Finish, SSEParser, parse_chunk

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


@pytest.mark.parametrize("data", ["[1,2]", "not json"])
def test_malformed_chunks_raise_value_error(data: str) -> None:
    with pytest.raises(ValueError):
        parse_chunk(data)


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
