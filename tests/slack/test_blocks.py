"""The Block Kit of answers, as tables: which controls go where, and what a click's value says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.slack.blocks import (
    FEEDBACK_ACTION,
    REGENERATE_ACTION,
    RETRY_ACTION,
    STOP_ACTION,
    fallback_text,
    final_controls,
    markdown,
    message_blocks,
    parse_action,
    parse_value,
    section,
    writing_controls,
)


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks for e in b.get("elements", [])]


def plain_texts(value: Any) -> list[str]:
    """Every plain_text object's text and every accessibility label, anywhere in the blocks."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            found.append(value["text"])
        if "accessibility_label" in value:
            found.append(value["accessibility_label"])
        for item in value.values():
            found += plain_texts(item)
    elif isinstance(value, list):
        for item in value:
            found += plain_texts(item)
    return found


@pytest.mark.parametrize(
    "answered,retry,expected",
    [
        (True, False, [FEEDBACK_ACTION, REGENERATE_ACTION]),  # a complete answer
        (False, False, [REGENERATE_ACTION]),  # nothing to judge
        (True, True, [FEEDBACK_ACTION, RETRY_ACTION]),  # a partial answer and a failure note
        (False, True, [RETRY_ACTION]),  # only a failure note
    ],
)
def test_final_controls(answered: bool, retry: bool, expected: list[str]) -> None:
    blocks = final_controls(7, answered=answered, retry=retry)
    assert action_ids(blocks) == expected
    feedback = [b for b in blocks if b["type"] == "context_actions"]
    assert len(feedback) == answered
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["value"] for b in buttons] == ["7"]


def test_feedback_buttons_carry_the_answer_and_which_button() -> None:
    [block, _] = final_controls(42, answered=True, retry=False)
    [element] = block["elements"]
    assert element["type"] == "feedback_buttons" and element["action_id"] == FEEDBACK_ACTION
    assert element["positive_button"]["value"] == "good:42"
    assert element["negative_button"]["value"] == "bad:42"
    assert element["positive_button"]["accessibility_label"] and element["negative_button"]["accessibility_label"]


def test_the_message_being_written_has_a_stop_button() -> None:
    [actions] = writing_controls(3)
    assert actions["type"] == "actions"
    [stop] = actions["elements"]
    assert (stop["type"], stop["action_id"], stop["value"]) == ("button", STOP_ACTION, "3")


@pytest.mark.parametrize(
    "blocks",
    [
        writing_controls(12_345_678),
        final_controls(12_345_678, answered=True, retry=False),
        final_controls(12_345_678, answered=True, retry=True),
    ],
)
def test_texts_and_labels_fit_slack_limits(blocks: list[dict[str, Any]]) -> None:
    texts = plain_texts(blocks)
    assert texts and all(0 < len(t) <= 75 for t in texts)
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))  # unique within a message
    json.dumps(blocks)  # plain JSON


def test_the_text_goes_in_a_section_before_the_controls() -> None:
    blocks = message_blocks("*hello*", writing_controls(1))
    assert blocks[0] == {"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}, "expand": True}
    assert action_ids(blocks) == [STOP_ACTION]
    assert message_blocks("closed", []) == [section("closed")]


@pytest.mark.parametrize("build,limit", [(section, 3_000), (markdown, 12_000)])
def test_texts_past_slack_limits_are_refused_here_not_by_slack(build: Any, limit: int) -> None:
    assert build("x" * limit)
    with pytest.raises(ValueError):
        build("x" * (limit + 1))


@pytest.mark.parametrize(
    "text,limit,expected",
    [
        ("short", 10, "short"),
        ("x" * 10, 10, "x" * 10),
        ("abcdefghijk", 10, "abcdefghi…"),
    ],
)
def test_fallback_text(text: str, limit: int, expected: str) -> None:
    assert fallback_text(text, limit) == expected
    assert len(fallback_text(text, limit)) <= limit


@pytest.mark.parametrize(
    "value,expected",
    [
        ("12", ("", 12)),
        ("good:12", ("good", 12)),
        ("bad:3", ("bad", 3)),
        ("0", None),  # ids start at 1
        ("-4", None),
        ("007", None),
        ("good:", None),
        ("meh:12", None),
        ("12 ", None),
        ("", None),
        ("1" * 19, None),  # not an id the store ever made
        (12, None),
        (None, None),
    ],
)
def test_parse_value(value: Any, expected: tuple[str, int] | None) -> None:
    assert parse_value(value) == expected


@pytest.mark.parametrize(
    "action_id,value,expected",
    [
        (STOP_ACTION, "5", ("stop", 5)),
        (REGENERATE_ACTION, "5", ("regenerate", 5)),
        (RETRY_ACTION, "5", ("retry", 5)),
        (FEEDBACK_ACTION, "good:5", ("good", 5)),
        (FEEDBACK_ACTION, "bad:5", ("bad", 5)),
        (FEEDBACK_ACTION, "5", None),  # a feedback value says which button
        (STOP_ACTION, "good:5", None),  # a button's value is the bare id
        ("somebody_elses", "5", None),
        (None, "5", None),
    ],
)
def test_parse_action(action_id: Any, value: str, expected: tuple[str, int] | None) -> None:
    assert parse_action(action_id, value) == expected


@pytest.mark.parametrize("answer_id", [1, 99, 2**40])
def test_every_value_built_parses_back(answer_id: int) -> None:
    blocks = writing_controls(answer_id) + final_controls(answer_id, answered=True, retry=False)
    blocks += final_controls(answer_id, answered=False, retry=True)
    for block in blocks:
        for element in block["elements"]:
            if element["type"] == "button":
                assert parse_action(element["action_id"], element["value"])[1] == answer_id  # type: ignore[index]
            else:
                for side, kind in (("positive_button", "good"), ("negative_button", "bad")):
                    assert parse_action(element["action_id"], element[side]["value"]) == (kind, answer_id)
