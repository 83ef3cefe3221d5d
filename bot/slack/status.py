"""An answer's loading state: Slack's "is thinking…" under the thread (assistant.threads.setStatus), shown
before the first text instead of a placeholder message.

Slack clears the state itself when the app posts in the thread (or after two minutes); an answer that never
posts there (one re-written in place, one that ends without a message) clears it with an empty status.
Where Slack refuses the call for good (a channel type, a missing scope, a channel the bot is not in), the
channel is remembered and its answers show a placeholder message instead, as before loading states.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.core.recent import RecentKeys
from bot.slack.api import RateLimited, SlackApi, SlackCallError

log = logging.getLogger(__name__)

METHOD = "assistant.threads.setStatus"
THINKING = "_Thinking…_"  # the placeholder's text, where a loading state cannot be shown
THINKING_STATUS = "is thinking…"  # Slack shows it after the app's name
# Shown in turn while the model has not answered yet: 1 to 10 of them, at most 50 characters each.
LOADING_MESSAGES = (
    "Reading the thread…",
    "Thinking it over…",
    "Putting an answer together…",
    "Choosing the right words…",
)
LOADING_MESSAGE_LIMIT = 50


def plain_status(status: str) -> str:
    """A placeholder's mrkdwn status ("_Trying again…_") as plain text for the loading state."""
    return status.strip().strip("_*").strip()


def shorten(text: str, limit: int = LOADING_MESSAGE_LIMIT) -> str:
    """`text` within `limit` characters, cut after a whole word and marked with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:.…") + "…"


def status_payload(status: str) -> dict[str, Any]:
    """setStatus's arguments for a writer's status: the thinking one rotates its loading messages; any other
    (a retry, a wait) is the one message shown, so no rotation hides it. An empty status clears the state."""
    if not status:
        return {"status": ""}
    if status == THINKING:
        return {"status": THINKING_STATUS, "loading_messages": list(LOADING_MESSAGES)}
    text = plain_status(status) or THINKING_STATUS
    return {"status": text, "loading_messages": [shorten(text)]}


# Channels (per workspace) remembered for something Slack refused there; past a cap the oldest are forgotten
# first, and tried again.
ChannelSet = RecentKeys[tuple[str, str]]


class LoadingState:
    """One answer's loading state in its thread."""

    def __init__(self, api: SlackApi, team_id: str, channel: str, thread_ts: str, refused: ChannelSet) -> None:
        self.api = api
        self.team_id = team_id
        self.channel = channel
        self.thread_ts = thread_ts
        self._refused = refused
        self.shown = False  # a state Slack still shows: set, and not cleared by a post in the thread since

    @property
    def usable(self) -> bool:
        return (self.team_id, self.channel) not in self._refused

    async def show(self, status: str, *, wait: bool = True) -> bool:
        """Show `status`; False when Slack did not (the caller shows a placeholder instead).

        Without `wait` it gives up at once when the workspace's setStatus budget is spent: the first sign of
        life must be fast, and a placeholder is as good. Passing failures are retried as urgent calls are.
        """
        if not self.usable:
            return False
        pacer = self.api.pacer(self.team_id)
        if not wait and pacer.budget.wait_time(METHOD, pacer.now()) > 0:
            return False
        try:
            await self._set(status, urgent=True)
        except RateLimited:
            return False
        except SlackCallError as exc:
            if exc.transient:
                log.warning("Slack did not show the loading state in %s (%s)", self.channel, exc.error)
            else:
                log.info("Slack refused loading states in %s (%s); placeholders there", self.channel, exc.error)
                self._refused.add((self.team_id, self.channel))
            return False
        self.shown = True
        return True

    def posted(self) -> None:
        """The app posted in the thread: Slack cleared the state."""
        self.shown = False

    async def clear(self) -> None:
        """Best effort: the state disappears after two minutes anyway."""
        if not self.shown:
            return
        self.shown = False
        try:
            await self._set("", urgent=False)
        except (SlackCallError, RateLimited) as exc:
            log.info("could not clear the loading state in %s: %s", self.channel, exc)

    async def _set(self, status: str, *, urgent: bool) -> None:
        await self.api.call(
            self.team_id,
            METHOD,
            urgent=urgent,
            retry_rate_limited=False,
            channel_id=self.channel,
            thread_ts=self.thread_ts,
            **status_payload(status),
        )
