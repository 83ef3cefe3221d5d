"""Message shortcuts: "Summarize thread" on any message."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot.conversation import Conversations
from bot.listeners.actions import tell
from bot.listeners.events import identity_of
from bot.summaries import summarize_thread

log = logging.getLogger(__name__)

SUMMARIZE = "summarize_thread"


def register(app: AsyncApp, conversations: Conversations) -> None:
    @app.shortcut(SUMMARIZE)
    async def summarize(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
        await ack()
        where = _thread_of(body)
        if where is None:
            log.info("ignored a %s payload without a usable message", SUMMARIZE)
            return
        team_id, channel_id, thread_ts, user_id, action_ts = where

        async def run() -> None:
            # Reading the thread may wait on Slack: Slack has its acknowledgement already.
            note = await summarize_thread(
                conversations,
                team_id=team_id,
                channel_id=channel_id,
                thread_ts=thread_ts,
                user_id=user_id,
                action_ts=action_ts,
                identity=identity_of(context),
            )
            if note:
                await tell(respond, note)

        conversations.spawn(run(), f"summary-{thread_ts}")


def _thread_of(body: dict[str, Any]) -> tuple[str, str, str, str, str] | None:
    """(team, channel, thread ts, user, action ts) of a message_action payload; None if it is malformed."""
    message = body.get("message")
    if not isinstance(message, dict):
        return None
    values = (
        _field(body.get("team"), "id"),
        _field(body.get("channel"), "id"),
        _field(message, "thread_ts") or _field(message, "ts"),
        _field(body.get("user"), "id"),
    )
    team_id, channel_id, thread_ts, user_id = values
    if not (team_id and channel_id and thread_ts and user_id):
        return None
    return team_id, channel_id, thread_ts, user_id, _field(body, "action_ts")


def _field(obj: Any, key: str) -> str:
    """A non-empty string field of a payload object, else ""."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""
