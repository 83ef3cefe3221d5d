"""The messages sent to the model: system prompt, then the thread's turns, trimmed to the context budget.

Oldest turns are dropped first and the system prompt is always kept. In a thread with several people each
user turn is labelled with its speaker, since the API refuses a `name` field on user messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Per-message overhead of the chat template ([INST] markers and the like), in tokens.
MESSAGE_OVERHEAD = 4
# Between the turns of one role merged into one message.
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class HistoryTurn:
    role: str  # "user" | "assistant"
    text: str
    speaker: str | None = None
    tokens: int | None = None  # the count of `label(turn)`, when it is already known
    # Content chunks after the text (the files the message shared: text, image_url, document_url); they go (or
    # are dropped) with their turn. Text chunks are counted like any text; `attachment_tokens` is what the
    # others cost (images, documents), as estimated when they were read.
    attachments: tuple[dict[str, Any], ...] = ()
    attachment_tokens: int = 0


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, Any]]
    dropped_turns: int = 0
    truncated_question: bool = False
    tokens: int = 0
    notes: list[str] = field(default_factory=list)
    trimmed: bool = False  # the whole thread was over the budget: turns were dropped or the question cut


@dataclass
class _Message:
    role: str
    parts: list[str]
    tokens: int  # its text's and its attachments'
    attachments: list[dict[str, Any]] = field(default_factory=list)
    attachment_tokens: int = 0  # what its attachments cost, text chunks included

    @property
    def text(self) -> str:
        return SEPARATOR.join(self.parts)

    def content(self, text: str | None = None) -> str | list[dict[str, Any]]:
        """The API's `content`: the text, or a list of chunks when files come with it."""
        text = self.text if text is None else text
        if not self.attachments:
            return text
        return [{"type": "text", "text": text}, *self.attachments]


def build_prompt(
    *,
    system_prompt: str,
    turns: list[HistoryTurn],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    prefix: str | None = None,
) -> Prompt:
    """`turns` end with the question being answered; `budget_tokens` is what the prompt may use.

    A turn's known `tokens` stand in for counting its text again; with turns counted one by one, a merged
    message costs the sum of its turns and separators.
    """
    merged = _merge(turns, count_tokens)
    if not merged or merged[-1].role != "user":
        raise ValueError("the last turn must be the user's question")

    fixed = count_tokens(system_prompt) + MESSAGE_OVERHEAD + (count_tokens(prefix) if prefix else 0)
    costs = [m.tokens + MESSAGE_OVERHEAD for m in merged]
    total = fixed + sum(costs)
    trimmed = total > budget_tokens
    start = 0
    while total > budget_tokens and start < len(merged) - 1:
        total -= costs[start]
        start += 1
    # The API wants the conversation to open with a user turn.
    while start < len(merged) - 1 and merged[start].role != "user":
        total -= costs[start]
        start += 1
    kept: list[dict[str, Any]] = [{"role": m.role, "content": m.content()} for m in merged[start:]]
    truncated = False
    if total > budget_tokens:
        question = merged[-1]
        files = question.attachment_tokens  # files are kept whole (their text was trimmed to its share already)
        room = max(budget_tokens - fixed - MESSAGE_OVERHEAD - files, 1)
        text = truncate_to_tokens(question.text, room, count_tokens)
        kept[-1] = {"role": "user", "content": question.content(text)}
        truncated = True
        total = fixed + count_tokens(text) + files + MESSAGE_OVERHEAD

    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}, *kept]
    if prefix:
        messages.append({"role": "assistant", "content": prefix, "prefix": True})
    return Prompt(messages, dropped_turns=start, truncated_question=truncated, tokens=total, trimmed=trimmed)


def label(turn: HistoryTurn) -> str:
    if turn.role == "user" and turn.speaker:
        return f"[{turn.speaker}] {turn.text}"
    return turn.text


def _merge(turns: list[HistoryTurn], count_tokens: Callable[[str], int]) -> list[_Message]:
    """Consecutive turns of one role (several people talking) become one message of that role."""
    separator = count_tokens(SEPARATOR)
    merged: list[_Message] = []
    for turn in turns:
        text = label(turn)
        files = turn.attachment_tokens + sum(
            count_tokens(c["text"]) + MESSAGE_OVERHEAD for c in turn.attachments if c.get("type") == "text"
        )
        tokens = (turn.tokens if turn.tokens is not None else count_tokens(text)) + files
        if merged and merged[-1].role == turn.role:
            merged[-1].parts.append(text)
            merged[-1].tokens += separator + tokens
            merged[-1].attachments.extend(turn.attachments)
            merged[-1].attachment_tokens += files
        else:
            merged.append(_Message(turn.role, [text], tokens, list(turn.attachments), files))
    return merged


TRUNCATION_MARK = "\n\n[… message truncated to fit the model's context …]"


def truncate_to_tokens(text: str, tokens: int, count_tokens: Callable[[str], int]) -> str:
    """The longest start of `text` (plus a visible mark) that fits in `tokens`."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(text[:mid] + TRUNCATION_MARK) <= tokens:
            low = mid
        else:
            high = mid - 1
    return text[:low] + TRUNCATION_MARK
