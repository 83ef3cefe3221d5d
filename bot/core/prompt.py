"""Prompt assembly: a thread's stored messages → the turns the model reads → a prompt within the budget.

Pure: the caller reads the messages, looks up the names and the context size, and chooses how tokens are
counted (`bot.tokens` counts with an upper bound first and with Tekken only when a prompt may not fit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.core.history import HistoryTurn, Prompt, build_prompt, label
from bot.core.params import ModelParams
from bot.core.slack_text import readable, strip_leading_mention, user_ids


@dataclass(frozen=True)
class ThreadMessage:
    """A stored message of the thread, as prompt assembly needs it."""

    id: int
    role: str  # "user" | "assistant"
    text: str
    slack_user: str | None = None
    tokens: int | None = None  # the exact count of what the model reads for it, once counted
    attachments: tuple[dict[str, Any], ...] = ()  # its files, as content chunks (`bot.files`)
    attachment_tokens: int = 0  # what its images and documents cost


@dataclass(frozen=True)
class Draft:
    """A prompt before counting: the turns the model reads, and the budget they must fit in."""

    system_prompt: str
    turns: list[HistoryTurn]
    message_ids: list[int]  # the stored message each turn reads, turn by turn
    budget_tokens: int
    prefix: str | None = None


@dataclass(frozen=True)
class Assembly:
    prompt: Prompt
    counted: dict[int, int]  # message id → exact count, for the messages counted here for the first time


def names_to_look_up(*, messages: Sequence[ThreadMessage], bot_user_id: str) -> set[str]:
    """Speakers, and people mentioned in what they wrote; the bot reads as its own name without a look-up."""
    wanted: set[str] = set()
    for m in messages:
        if m.role != "user":
            continue  # answers are sent as the model wrote them
        if m.slack_user:
            wanted.add(m.slack_user)
        wanted |= user_ids(m.text)
    return wanted - {bot_user_id}


def prompt_budget(*, context_tokens: int, max_tokens: int | None) -> int:
    """What the prompt may use: the window minus room for the answer (`max_tokens`, or a quarter, at most half)."""
    reserve = min(max_tokens or context_tokens // 4, context_tokens // 2)
    return context_tokens - reserve


def draft_prompt(
    *,
    messages: Sequence[ThreadMessage],
    names: Mapping[str, str],
    bot_user_id: str,
    bot_name: str,
    system_prompt: str,
    params: ModelParams,
    context_tokens: int,
) -> Draft:
    """The thread as the model reads it: mentions made readable, each person's turn labelled with their name."""
    turns: list[HistoryTurn] = []
    ids: list[int] = []
    for m in messages:
        if m.role == "assistant":
            turn = HistoryTurn("assistant", m.text, tokens=m.tokens)
        else:
            text = readable(
                strip_leading_mention(m.text, bot_user_id), names=names, bot_user_id=bot_user_id, bot_name=bot_name
            )
            if not text and not m.attachments:
                continue  # a bare mention asks for help, not for the model
            turn = HistoryTurn(
                "user",
                text,
                speaker=names.get(m.slack_user or ""),
                tokens=m.tokens,
                attachments=m.attachments,
                attachment_tokens=m.attachment_tokens,
            )
        turns.append(turn)
        ids.append(m.id)
    return Draft(
        system_prompt=system_prompt,
        turns=turns,
        message_ids=ids,
        budget_tokens=prompt_budget(context_tokens=context_tokens, max_tokens=params.max_tokens),
        prefix=params.prefix,
    )


def fit_prompt(*, draft: Draft, count_tokens: Callable[[str], int], exact: bool) -> Assembly:
    """Trim `draft` to its budget as `count_tokens` counts.

    With an `exact` count, every turn not counted before is counted (all of them, so none is counted twice
    across turns of the thread) and reported in `counted`, for the store to keep. An inexact count is never
    reported: it would pass for an exact one later.
    """
    turns = draft.turns
    counted: dict[int, int] = {}
    if exact:
        turns = []
        for message_id, turn in zip(draft.message_ids, draft.turns, strict=True):
            if turn.tokens is None:
                tokens = counted[message_id] = count_tokens(label(turn))
                turn = replace(turn, tokens=tokens)
            turns.append(turn)
    prompt = build_prompt(
        system_prompt=draft.system_prompt,
        turns=turns,
        budget_tokens=draft.budget_tokens,
        count_tokens=count_tokens,
        prefix=draft.prefix,
    )
    return Assembly(prompt, counted)
