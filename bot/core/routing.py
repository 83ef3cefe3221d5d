"""Which Slack events the bot answers, and which conversation (thread) a message belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

# Subtypes that are still a person writing to the thread; every other subtype (joins, topic changes,
# bot_message, ...) is chatter the bot never answers.
_USER_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})


class Action(Enum):
    IGNORE = "ignore"
    ANSWER = "answer"  # a mention or a DM: always answer
    ANSWER_IF_KNOWN = "answer_if_known"  # a thread reply: answer only if the bot is in that thread
    EDIT = "edit"  # a user edited a message: update the stored history
    DELETE = "delete"  # a user deleted a message: drop it from the stored history


@dataclass(frozen=True)
class Incoming:
    """A person's Slack message, reduced to what the bot needs."""

    team_id: str
    channel_id: str
    ts: str
    thread_ts: str  # the thread the message is in; for a top-level message, its own ts
    user_id: str
    text: str
    channel_type: str  # "channel" | "group" | "im" | "mpim"
    files: tuple[dict[str, Any], ...] = ()  # the Slack file objects the message shares, as the event gives them
    # What REDACT took out of `text` before it was stored: (kind, count) pairs, for the note on the answer.
    withheld: tuple[tuple[str, int], ...] = ()

    @property
    def in_thread(self) -> bool:
        return self.thread_ts != self.ts

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im"


@dataclass(frozen=True)
class Decision:
    action: Action
    message: Incoming | None = None


IGNORE = Decision(Action.IGNORE)


def mentions(text: str, user_id: str) -> bool:
    return re.search(rf"<@{re.escape(user_id)}(\|[^>]*)?>", text) is not None


def classify_event(event: dict[str, Any], *, team_id: str, bot_user_id: str) -> Decision:
    """Decide what to do with an `app_mention` or `message` event; pure, so tests drive it with dicts.

    The event is JSON from the network: a field of the wrong type makes it chatter to ignore (or, for the
    optional fields, reads as absent), never an exception.
    """
    if not isinstance(event, dict):
        return IGNORE
    team_id = team_id if isinstance(team_id, str) else ""
    kind = event.get("type")
    subtype = event.get("subtype")
    if not isinstance(kind, str) or not (subtype is None or isinstance(subtype, str)):
        return IGNORE
    if kind == "message" and subtype in ("message_changed", "message_deleted"):
        return _classify_change(event, team_id=team_id, bot_user_id=bot_user_id)
    if kind not in ("message", "app_mention") or subtype not in _USER_SUBTYPES:
        return IGNORE
    message = _incoming(event, team_id=team_id)
    if message is None or event.get("bot_id") or message.user_id == bot_user_id:
        return IGNORE  # never answer bots, ourselves included: that way lie loops
    if kind == "app_mention" or message.is_dm or mentions(message.text, bot_user_id):
        return Decision(Action.ANSWER, message)
    if message.in_thread:
        return Decision(Action.ANSWER_IF_KNOWN, message)
    return IGNORE


def _classify_change(event: dict[str, Any], *, team_id: str, bot_user_id: str) -> Decision:
    if event["subtype"] == "message_deleted":
        previous = event.get("previous_message") or {}
        if not isinstance(previous, dict):
            return IGNORE
        ts = event.get("deleted_ts") or previous.get("ts")
        if not isinstance(ts, str) or not ts or previous.get("bot_id"):
            return IGNORE
        inner = {**previous, "ts": ts, "channel": event.get("channel"), "text": previous.get("text", "")}
        message = _incoming(inner, team_id=team_id, require_user=False)
        return Decision(Action.DELETE, message) if message else IGNORE
    changed = event.get("message") or {}
    if not isinstance(changed, dict):
        return IGNORE
    inner = {**changed, "channel": event.get("channel")}
    if inner.get("bot_id") or inner.get("user") == bot_user_id:
        return IGNORE
    message = _incoming(inner, team_id=team_id)
    return Decision(Action.EDIT, message) if message else IGNORE


def _incoming(event: dict[str, Any], *, team_id: str, require_user: bool = True) -> Incoming | None:
    channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
    if not isinstance(channel, str) or not isinstance(ts, str) or (require_user and not isinstance(user, str)):
        return None
    text, team, thread_ts, channel_type = (event.get(k) for k in ("text", "team", "thread_ts", "channel_type"))
    files = event.get("files")
    return Incoming(
        team_id=team if isinstance(team, str) and not team_id else team_id,
        channel_id=channel,
        ts=ts,
        thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else ts,
        user_id=user if isinstance(user, str) else "",
        text=text if isinstance(text, str) else "",
        channel_type=channel_type if isinstance(channel_type, str) and channel_type else channel_type_of(channel),
        files=tuple(f for f in files if isinstance(f, dict)) if isinstance(files, list) else (),
    )


def channel_type_of(channel_id: str) -> str:
    # app_mention events carry no channel_type; the ID's first letter tells DMs from channels.
    return {"D": "im", "G": "group"}.get(channel_id[:1], "channel")
