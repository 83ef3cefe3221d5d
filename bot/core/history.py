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


@dataclass(frozen=True)
class HistoryTurn:
    role: str  # "user" | "assistant"
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, Any]]
    dropped_turns: int = 0
    truncated_question: bool = False
    tokens: int = 0
    notes: list[str] = field(default_factory=list)


def build_prompt(
    *,
    system_prompt: str,
    turns: list[HistoryTurn],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    prefix: str | None = None,
) -> Prompt:
    """`turns` end with the question being answered; `budget_tokens` is what the prompt may use."""
    merged = _merge(turns)
    if not merged or merged[-1]["role"] != "user":
        raise ValueError("the last turn must be the user's question")

    def cost(message: dict[str, Any]) -> int:
        return count_tokens(message["content"]) + MESSAGE_OVERHEAD

    fixed = count_tokens(system_prompt) + MESSAGE_OVERHEAD + (count_tokens(prefix) if prefix else 0)
    costs = [cost(m) for m in merged]
    total = fixed + sum(costs)
    start = 0
    while total > budget_tokens and start < len(merged) - 1:
        total -= costs[start]
        start += 1
    # The API wants the conversation to open with a user turn.
    while start < len(merged) - 1 and merged[start]["role"] != "user":
        total -= costs[start]
        start += 1
    kept = merged[start:]
    truncated = False
    if total > budget_tokens:
        room = max(budget_tokens - fixed - MESSAGE_OVERHEAD, 1)
        kept[-1] = {"role": "user", "content": truncate_to_tokens(kept[-1]["content"], room, count_tokens)}
        truncated = True
        total = fixed + cost(kept[-1])

    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}, *kept]
    if prefix:
        messages.append({"role": "assistant", "content": prefix, "prefix": True})
    return Prompt(messages, dropped_turns=start, truncated_question=truncated, tokens=total)


def label(turn: HistoryTurn) -> str:
    if turn.role == "user" and turn.speaker:
        return f"[{turn.speaker}] {turn.text}"
    return turn.text


def _merge(turns: list[HistoryTurn]) -> list[dict[str, Any]]:
    """Consecutive turns of one role (several people talking) become one message of that role."""
    merged: list[dict[str, Any]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn.role:
            merged[-1]["content"] += "\n\n" + label(turn)
        else:
            merged.append({"role": turn.role, "content": label(turn)})
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
