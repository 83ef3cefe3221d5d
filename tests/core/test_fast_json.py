"""fast_json: orjson's speed, the standard library's results and errors where orjson would refuse."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core import fast_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_what_it_writes_reads_back_as_the_standard_library_reads_it(value: object) -> None:
    text = fast_json.dumps(value)
    assert json.loads(text) == value
    assert fast_json.loads(text) == value
    assert fast_json.dumps_bytes(value) == text.encode()


def test_what_orjson_refuses_goes_through_the_standard_library() -> None:
    assert fast_json.loads('{"a": "\\ud800"}') == {"a": "\ud800"}  # a lone surrogate escape
    assert fast_json.dumps({"n": 2**70}) == '{"n":1180591620717411303424}'  # beyond 64 bits
    assert fast_json.dumps({1: "one"}) == '{"1":"one"}'  # a key that is not a string
    assert fast_json.dumps({"s": "é 😀"}) == '{"s":"é 😀"}'  # UTF-8, as the bodies are sent


def test_errors_are_the_standard_librarys_own() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        fast_json.loads('{"a": ')
    with pytest.raises(TypeError):
        fast_json.dumps({"s": {1, 2}})  # a set is no JSON either way
