"""Slack's agent surfaces: the Messages tab's suggested prompts, the Home tab, and DM thread titles.

Each one is a courtesy around the answers, so none may get in their way: Slack refusing (a missing scope, a
rate limit, an unknown channel) is logged and the bot goes on. Calls are not urgent and never wait out a rate
limit: the next time the tab opens tries again with fresher data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from bot.core.home_view import ChannelLine, ThreadLine, home_view
from bot.core.personas import SuggestedPrompt
from bot.core.titles import thread_title
from bot.personas import Personas
from bot.slack.api import RateLimited, SlackCallError
from bot.storage import Store

log = logging.getLogger(__name__)

RECENT_THREADS = 10
CHANNELS_SHOWN = 50
PROMPTS_TITLE = "Try asking"


class WebApi(Protocol):
    """Slack's Web API as these helpers use it (`bot.slack.api.SlackApi`)."""

    async def call(self, team_id: str, method: str, **kwargs: Any) -> dict[str, Any]: ...


async def _courtesy(out: WebApi, team_id: str, method: str, what: str, **payload: Any) -> bool:
    """One call that may fail without consequence; True when Slack took it."""
    try:
        await out.call(team_id, method, urgent=False, retry_rate_limited=False, **payload)
    except RateLimited as exc:
        log.info("%s skipped: %s", what, exc)
        return False
    except SlackCallError as exc:
        hint = " (reinstall the app from manifest.yml to grant it)" if exc.error == "missing_scope" else ""
        log.warning("%s failed: %s%s", what, exc.error, hint)
        return False
    return True


async def set_suggested_prompts(
    out: WebApi, team_id: str, channel_id: str, prompts: Sequence[SuggestedPrompt], title: str | None = None
) -> bool:
    """Show `prompts` in a person's Messages tab (`channel_id`: their DM with the bot).

    Agent apps must leave out `thread_ts`: with it, Slack accepts the call and shows nothing.
    """
    payload: dict[str, Any] = {
        "channel_id": channel_id,
        "prompts": [{"title": p.title, "message": p.message} for p in prompts],
    }
    if title:
        payload["title"] = title
    return await _courtesy(out, team_id, "assistant.threads.setSuggestedPrompts", "suggested prompts", **payload)


async def show_prompts(out: WebApi, personas: Personas, team_id: str, channel_id: str) -> bool:
    """The Messages tab opened: suggest what the DM's persona is good for."""
    persona = await personas.current(team_id, channel_id)
    return await set_suggested_prompts(out, team_id, channel_id, personas.prompts_for(persona), PROMPTS_TITLE)


async def publish_home(
    out: WebApi,
    store: Store,
    personas: Personas,
    *,
    team_id: str,
    user_id: str,
    bot_user_id: str,
    workspace_url: str | None,
) -> bool:
    """The Home tab opened: publish it for `user_id` with their conversations and the channels' personas."""
    recent = await store.recent_conversations(team_id, user_id, limit=RECENT_THREADS)
    uses = await store.channels_in_use(team_id, limit=CHANNELS_SHOWN)
    threads = [ThreadLine(c.key.channel_id, c.key.thread_ts, c.first_question, c.last_activity) for c in recent]
    ratings: dict[str, tuple[int, int]] = {}
    for count in await store.feedback_counts(team_id):  # per channel and persona: summed per channel here
        good, bad = ratings.get(count.channel_id, (0, 0))
        ratings[count.channel_id] = (good + count.good, bad + count.bad)
    channels = []
    for use in uses:
        persona = personas.resolve(use.channel_id, use.persona)
        label = persona.name or ("custom" if use.persona is not None else "default")
        model = personas.effective(persona).model or "default"
        channels.append(ChannelLine(use.channel_id, label, model, *ratings.get(use.channel_id, (0, 0))))
    view = home_view(bot_user_id=bot_user_id, threads=threads, channels=channels, workspace_url=workspace_url)
    return await _courtesy(out, team_id, "views.publish", f"the Home tab of {user_id}", user_id=user_id, view=view)


async def set_thread_title(out: WebApi, team_id: str, channel_id: str, thread_ts: str, question: str) -> None:
    """Name a DM thread in the Messages tab after the question that started it."""
    await _courtesy(
        out,
        team_id,
        "assistant.threads.setTitle",
        f"the title of thread {thread_ts}",
        channel_id=channel_id,
        thread_ts=thread_ts,
        title=thread_title(question),
    )
