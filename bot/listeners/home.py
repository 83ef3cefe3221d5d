"""App Home: `app_home_opened` for the Messages tab (suggested prompts) and the Home tab (its view)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.agent_view import publish_home, show_prompts
from bot.conversation import Conversations


def workspace_url(context: AsyncBoltContext) -> str | None:
    """The workspace's address, as start-up's `auth.test` answered it (`https://acme.slack.com/`)."""
    identity = context.authorize_result
    return identity.url if identity is not None else None


def register(app: AsyncApp, conversations: Conversations) -> None:
    @app.event("app_home_opened")
    async def home_opened(body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        team_id = body.get("team_id") or context.team_id or ""
        tab = event.get("tab")
        # Slack is answered at once; the calls run as tracked tasks, so shutdown waits for them too.
        if tab == "messages" and event.get("channel"):
            work = show_prompts(conversations.out, conversations.personas, team_id, event["channel"])
            conversations.spawn(_no_result(work), "suggested-prompts")
        elif tab == "home" and event.get("user"):
            work = publish_home(
                conversations.out,
                conversations.store,
                conversations.personas,
                team_id=team_id,
                user_id=event["user"],
                bot_user_id=context.bot_user_id or "",
                workspace_url=workspace_url(context),
            )
            conversations.spawn(_no_result(work), "home-tab")


async def _no_result(work: Awaitable[bool]) -> None:
    await work  # whether Slack took the call: failures are logged where they happen
