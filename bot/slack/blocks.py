"""The Block Kit of an answer: its text, and the controls people use on it (Stop, feedback, Regenerate, Try again).

Pure: every function builds plain dicts (Slack's JSON) from what the writer knows, so a table test reaches
each decision. Each control's `value` names the answer it belongs to (the store's answer id); the action
handlers read it back with `parse_action`. Slack's rules kept here: a section's text is under 3,001
characters, a markdown block's under 12,001, a button's text and accessibility label at most 75.
"""

from __future__ import annotations

import re
from typing import Any

Block = dict[str, Any]

STOP_ACTION = "stop_answer"
REGENERATE_ACTION = "regenerate_answer"
RETRY_ACTION = "retry_answer"
FEEDBACK_ACTION = "answer_feedback"
ACTIONS_BLOCK = "answer_actions"  # block_id of the buttons
FEEDBACK_BLOCK = "answer_feedback"  # block_id of the feedback buttons
GOOD, BAD = "good", "bad"

SECTION_LIMIT = 3_000  # Slack: a section's text must be under 3,001 characters
MARKDOWN_LIMIT = 12_000  # Slack: a markdown block holds at most 12,000 characters
FALLBACK_LIMIT = 3_000  # `text` beside blocks only feeds notifications: a long one helps nobody

# What each control's action_id asks for, as `parse_action` names it.
_KINDS = {STOP_ACTION: "stop", REGENERATE_ACTION: "regenerate", RETRY_ACTION: "retry"}
_VALUE = re.compile(r"^(?:(good|bad):)?([1-9][0-9]{0,17})$")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def section(text: str) -> Block:
    """The answer's visible text, mrkdwn; `expand` so long answers show whole, without "see more"."""
    if len(text) > SECTION_LIMIT:
        raise ValueError(f"a section's text is {len(text)} characters; Slack takes {SECTION_LIMIT}")
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, "expand": True}


def markdown(text: str) -> Block:
    """Standard Markdown, rendered as a native stream renders it (a stopped stream keeps its look)."""
    if len(text) > MARKDOWN_LIMIT:
        raise ValueError(f"a markdown block's text is {len(text)} characters; Slack takes {MARKDOWN_LIMIT}")
    return {"type": "markdown", "text": text}


def button(action_id: str, text: str, answer_id: int, *, label: str, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(text),
        "value": str(answer_id),
        "accessibility_label": label,
    }
    if style is not None:
        element["style"] = style
    return element


def feedback(answer_id: int) -> Block:
    """Thumbs up and down in a `context_actions` block: values `good:<id>` and `bad:<id>`."""
    return {
        "type": "context_actions",
        "block_id": FEEDBACK_BLOCK,
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": {
                    "text": _plain("Good answer"),
                    "value": f"{GOOD}:{answer_id}",
                    "accessibility_label": "Mark this answer as helpful",
                },
                "negative_button": {
                    "text": _plain("Bad answer"),
                    "value": f"{BAD}:{answer_id}",
                    "accessibility_label": "Mark this answer as not helpful",
                },
            }
        ],
    }


def _actions(*elements: Block) -> Block:
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": list(elements)}


def writing_controls(answer_id: int) -> list[Block]:
    """Under the message being written with chat.update: a Stop button (a native stream has Slack's own)."""
    return [_actions(button(STOP_ACTION, "Stop", answer_id, label="Stop writing this answer"))]


def final_controls(answer_id: int, *, answered: bool, retry: bool, rerun: bool = True) -> list[Block]:
    """Under the last message of a finished answer.

    Feedback needs an answer to judge (`answered`: there is answer text). After a failure (`retry`) the
    button runs the turn again ("Try again"); otherwise it asks for another answer ("Regenerate"). Without
    `rerun` (a failure that would only repeat: a wrong key or model) there is no such button.
    """
    blocks = [feedback(answer_id)] if answered else []
    if not rerun:
        return blocks
    if retry:
        again = button(RETRY_ACTION, "Try again", answer_id, label="Try answering again", style="primary")
    else:
        again = button(REGENERATE_ACTION, "Regenerate", answer_id, label="Write a new answer instead")
    return [*blocks, _actions(again)]


def message_blocks(text: str, controls: list[Block]) -> list[Block]:
    """A chat.update message: its text in a section (Slack shows blocks, not `text`), then its controls."""
    return [section(text), *controls]


def fallback_text(text: str, limit: int = FALLBACK_LIMIT) -> str:
    """The `text` sent beside blocks, for notifications: the start of the message."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def parse_value(value: object) -> tuple[str, int] | None:
    """A control's value as (kind, answer_id): `good:12` → ("good", 12), `12` → ("", 12); else None."""
    if not isinstance(value, str) or not (match := _VALUE.match(value)):
        return None
    return match.group(1) or "", int(match.group(2))


def parse_action(action_id: object, value: object) -> tuple[str, int] | None:
    """What a click asks for, as (kind, answer_id): kind is stop, regenerate, retry, good or bad; None for
    anything this module did not build (another action, a value of the wrong shape)."""
    parsed = parse_value(value)
    if parsed is None or not isinstance(action_id, str):
        return None
    kind, answer_id = parsed
    if action_id == FEEDBACK_ACTION:
        return (kind, answer_id) if kind else None
    if action_id in _KINDS and not kind:
        return _KINDS[action_id], answer_id
    return None
