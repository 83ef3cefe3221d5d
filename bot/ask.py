"""`/ask <question>`: post who asked what in the channel, then answer in that message's thread.

Where the bot cannot post (a private channel it is not in, an archived one), the answer goes to a DM with the
asker, who is told why privately.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.conversation import Conversations, Identity
from bot.core.routing import Incoming, channel_type_of
from bot.notes import CANNOT_POST, UNEXPECTED_NOTE
from bot.slack.api import RateLimited, SlackCallError

log = logging.getLogger(__name__)


def ask_in_background(
    conversations: Conversations, *, private_note: Callable[[str], Awaitable[None]], **question: Any
) -> None:
    """Run `/ask` after Slack has its acknowledgement; a note for the asker goes to `private_note`."""

    async def run() -> None:
        try:
            note = await ask(conversations, **question)
        except Exception:
            log.exception("/ask failed")
            note = UNEXPECTED_NOTE
        if note:
            try:
                await private_note(note)
            except Exception:
                log.exception("could not send /ask's private note")

    conversations.spawn(run(), "ask")


async def ask(
    conversations: Conversations, *, team_id: str, channel_id: str, user_id: str, question: str, identity: Identity
) -> str | None:
    """`/ask`: show who asked what in the channel and answer in that message's thread.

    Returns a private note for the asker when the answer had to go elsewhere.
    """
    if not conversations.accepting:
        return "I'm restarting right now; please ask again in a moment."
    refusal = conversations.admission.refusal(channel_id, user_id)
    if refusal is not None:
        return refusal
    # What Slack showed nobody else yet: posted with REDACT's matches taken out, as the store keeps it.
    shown = f"<@{user_id}> asked:\n>{conversations.redact.redact(question)[0]}"
    note = None
    if channel_id.startswith("C"):
        # chat:write.public lets the bot post in a public channel it is not in, but Slack sends it no events
        # from there, so replies in the answer's thread would go unanswered: join first (channels:join).
        # Where joining fails (a private channel, an install without the scope), posting goes on as before.
        try:
            await conversations.out.call(team_id, "conversations.join", channel=channel_id, retry_rate_limited=False)
        except SlackCallError as exc:
            log.info("/ask could not join %s (%s); posting without joining", channel_id, exc.error)
        except RateLimited:
            log.info("/ask could not join %s (rate limited); posting without joining", channel_id)
    try:
        ts = str((await conversations.out.post(team_id, channel_id, shown))["ts"])
    except SlackCallError as exc:
        if exc.error not in CANNOT_POST:
            log.warning("/ask could not post in %s: %s", channel_id, exc.error)
            return f"I couldn't post your question (Slack said `{exc.error}`). Please try again."
        # The answer is not lost: it goes to a DM with the asker instead.
        log.info("/ask cannot post in %s (%s); answering in a DM", channel_id, exc.error)
        try:
            data = await conversations.out.post(team_id, user_id, shown)
        except SlackCallError as dm_exc:
            log.warning("/ask could not DM %s either: %s", user_id, dm_exc.error)
            return f"I can't post in this channel: {CANNOT_POST[exc.error]}"
        channel_id, ts = str(data["channel"]), str(data["ts"])
        note = f"I can't post in that channel: {CANNOT_POST[exc.error]} I've answered you in our DM instead."
    message = Incoming(
        team_id=team_id,
        channel_id=channel_id,
        ts=ts,
        thread_ts=ts,
        user_id=user_id,
        text=question,
        channel_type=channel_type_of(channel_id),
    )
    await conversations.submit(message, identity)
    return note
