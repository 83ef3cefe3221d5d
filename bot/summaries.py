"""The "Summarize thread" message shortcut: read a thread once from Slack, and answer a summary in it.

The summary starts a conversation in that thread like any question: people can follow up there. Slack's
thread history is read once (`conversations.replies` is limited to about one call a minute for apps outside
the Marketplace), stored as the conversation's context, and never read again; where the bot cannot read the
thread, the person who asked is told why, privately.
"""

from __future__ import annotations

import logging

from bot.context import read_thread
from bot.conversation import Conversations, Identity
from bot.core.backfill import earlier_messages
from bot.core.routing import Incoming, channel_type_of
from bot.notes import RESTARTING
from bot.slack.api import RateLimited, SlackCallError
from bot.storage import NewMessage, ThreadKey

log = logging.getLogger(__name__)

SUMMARY_REQUEST = (
    "Summarize this thread for someone who hasn't read it: the question or topic, the main points, what was "
    "decided, and what is still open (with who owns it, where the thread says so). Keep it short."
)
RATE_LIMITED = "Slack lets me read a thread only about once a minute; please try again in a minute."
EMPTY = "There's nothing in that thread I can read."
PARTLY_READ = "Slack let me read only the first {count} messages of that thread, so the summary covers those."
# Why the bot cannot read a thread, as the person is told.
CANNOT_READ = {
    "not_in_channel": "I'm not a member of that channel; invite me with `/invite` and try again.",
    "channel_not_found": "I can't see that channel; invite me with `/invite` and try again.",
    "missing_scope": "I'm not allowed to read that kind of conversation (an admin can add the scope).",
    "thread_not_found": "I couldn't find that thread.",
}
# Later than any ts: every message of the thread counts as context.
_END_OF_TIME = "9999999999.999999"


async def summarize_thread(
    conversations: Conversations,
    *,
    team_id: str,
    channel_id: str,
    thread_ts: str,
    user_id: str,
    action_ts: str,
    identity: Identity,
) -> str | None:
    """Answer a summary of the thread at `thread_ts`; returns a private note for the person when it cannot, or
    when it can read only part of the thread."""
    if not conversations.accepting:
        return RESTARTING
    refusal = conversations.admission.refusal(channel_id, user_id)
    if refusal is not None:
        return refusal
    key = ThreadKey(team_id, channel_id, thread_ts)
    try:
        data = await read_thread(conversations.out, key)
    except RateLimited:
        return RATE_LIMITED
    except SlackCallError as exc:
        log.info("cannot read thread %s in %s to summarize it: %s", thread_ts, channel_id, exc.error)
        return CANNOT_READ.get(exc.error, f"I couldn't read that thread (Slack said `{exc.error}`).")
    thread = earlier_messages(data, before_ts=_END_OF_TIME, bot_user_id=identity.bot_user_id)
    if not thread:
        return EMPTY
    # The request sits after the thread's last message, so the history reads it last.
    request_ts = max(action_ts, after(max(m.ts for m in thread))) if _is_ts(action_ts) else after(thread[-1].ts)
    persona = await conversations.personas.current(team_id, channel_id)
    turn = await conversations.store.claim_turn(key, persona, NewMessage("user", SUMMARY_REQUEST, request_ts, user_id))
    if turn is None:
        return None  # the same click, delivered twice
    # In a thread the bot already takes part in, its own answers are stored whole: Slack's copies (one per
    # message of a long answer, notes included) would repeat them. People's messages it missed are added.
    context = thread if turn.created_conversation else [m for m in thread if m.role == "user"]
    await conversations.store.add_context(
        turn.conversation.id,
        [NewMessage(m.role, conversations.redact.redact(m.text)[0], m.ts, m.user) for m in context],
    )
    message = Incoming(
        team_id=team_id,
        channel_id=channel_id,
        ts=request_ts,
        thread_ts=thread_ts,
        user_id=user_id,
        text=SUMMARY_REQUEST,
        channel_type=channel_type_of(channel_id),
    )
    log.info("%s asked for a summary of thread %s in %s (%d messages)", user_id, thread_ts, channel_id, len(thread))
    conversations.start_turn(turn, message, identity, backfill=False)
    if isinstance(data, dict) and data.get("has_more"):
        return PARTLY_READ.format(count=len(thread))
    return None


def after(ts: str) -> str:
    """The Slack ts one microsecond after `ts` (exact: ts strings are seconds and six digits)."""
    seconds, _, micros = ts.partition(".")
    total = int(seconds) * 1_000_000 + int((micros or "0").ljust(6, "0")[:6]) + 1
    return f"{total // 1_000_000}.{total % 1_000_000:06d}"


def _is_ts(value: str) -> bool:
    seconds, dot, micros = value.partition(".")
    return bool(dot) and seconds.isdigit() and micros.isdigit() and len(micros) == 6
