"""Reading a `conversations.replies` payload: the messages of a thread that came before the bot was asked.

Slack's thread history is a best-effort backfill (distributed apps get one call a minute and 15 messages),
so the payload is read defensively: whatever does not look like a message is skipped, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EarlierMessage:
    role: str  # "user" | "assistant" (the bot's own earlier messages)
    text: str
    ts: str
    user: str | None = None  # the person who wrote it; None for the bot's own


def earlier_messages(payload: Any, *, before_ts: str, bot_user_id: str) -> list[EarlierMessage]:
    """The people's and the bot's own messages in `payload` older than `before_ts`, in the payload's order.

    Other bots' and apps' messages are left out: they are not part of the conversation.
    """
    entries = payload.get("messages") if isinstance(payload, Mapping) else None
    if not isinstance(entries, list):
        return []
    earlier = []
    for m in entries:
        if not isinstance(m, Mapping):
            continue
        ts, text, user = m.get("ts"), m.get("text"), m.get("user")
        # Slack ts strings are fixed-width ("1700000000.000100"), so text order is time order.
        if not isinstance(ts, str) or ts >= before_ts or not isinstance(text, str) or not text:
            continue
        if user == bot_user_id:
            earlier.append(EarlierMessage("assistant", text, ts))
        elif isinstance(user, str) and not m.get("bot_id"):
            earlier.append(EarlierMessage("user", text, ts, user))
    return earlier
