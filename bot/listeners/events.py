"""Events API: mentions, channel/group/DM messages, and their edits and deletions."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.conversation import Conversations, Identity


def identity_of(context: AsyncBoltContext) -> Identity:
    return Identity(bot_user_id=context.bot_user_id or "", bot_name=context.get("bot_name") or "assistant")


def register(app: AsyncApp, conversations: Conversations) -> None:
    async def on_event(body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        team_id = body.get("team_id") or context.team_id or ""
        await conversations.on_event(event, team_id=team_id, identity=identity_of(context))

    # Both events of a channel mention (app_mention and message) reach the same code: the store's claim
    # answers whichever comes first and drops the other.
    app.event("app_mention")(on_event)
    app.event("message")(on_event)
