"""What the buttons on an answer do: Stop, feedback, Try again and Regenerate.

Every payload is checked against the store before anything happens: a button of another workspace, of an answer
the bot no longer knows, or one pressed by someone outside the conversation gets a short private note, never
an error. Each function returns that note (None: nothing to say).
"""

from __future__ import annotations

import logging

from bot.context import asked
from bot.conversation import Conversations, Identity
from bot.notes import (
    ALREADY_FINISHED,
    ALREADY_RUNNING,
    FEEDBACK_THANKS,
    ONLY_LATEST,
    ONLY_PARTICIPANTS,
    RESTARTING,
    STALE_ACTION,
)
from bot.storage import UNFINISHED, AnswerRef

log = logging.getLogger(__name__)


async def stop_answer(conversations: Conversations, *, team_id: str, user_id: str, answer_id: int) -> str | None:
    running = conversations.answering(answer_id)
    if running is None:
        ref = await _answer_in(conversations, team_id, answer_id)
        return STALE_ACTION if ref is None else ALREADY_FINISHED
    turn, asker = running
    if turn.conversation.key.team_id != team_id:
        return STALE_ACTION
    if user_id != asker and not await conversations.store.is_participant(turn.conversation.id, user_id):
        return ONLY_PARTICIPANTS
    return None if conversations.stop(answer_id, user_id) else ALREADY_FINISHED


async def record_feedback(
    conversations: Conversations, *, team_id: str, user_id: str, answer_id: int, value: str
) -> str | None:
    """Anyone who sees an answer may rate it; a second click by the same person replaces the first."""
    if await _answer_in(conversations, team_id, answer_id) is None:
        return STALE_ACTION
    if not await conversations.store.record_feedback(answer_id, user_id, value):
        return STALE_ACTION
    log.info("%s rated answer %d %s", user_id, answer_id, value)
    return FEEDBACK_THANKS[value]


async def rerun_answer(
    conversations: Conversations, *, team_id: str, user_id: str, answer_id: int, identity: Identity
) -> str | None:
    """Try again / Regenerate: run the answer's turn again, written over it in the same Slack message.

    Only the latest answer of a thread: a later turn was answered with this one in its history.
    """
    ref = await _answer_in(conversations, team_id, answer_id)
    if ref is None:
        return STALE_ACTION
    if not conversations.accepting:
        return RESTARTING
    if user_id != ref.asker and not await conversations.store.is_participant(ref.conversation.id, user_id):
        return ONLY_PARTICIPANTS
    if ref.status in UNFINISHED:
        return ALREADY_RUNNING
    if not ref.latest:
        return ONLY_LATEST
    message = await asked(conversations.store, ref, user_id)
    if message is None:
        return STALE_ACTION  # the question was deleted in Slack
    turn = await conversations.store.restart_answer(answer_id)
    if turn is None:
        return ALREADY_RUNNING  # another click (or a later message) got there first
    log.info("%s asked for answer %d again", user_id, answer_id)
    conversations.start_turn(turn, message, identity, reuse=ref.slack_parts, backfill=False)
    return None


async def _answer_in(conversations: Conversations, team_id: str, answer_id: int) -> AnswerRef | None:
    ref = await conversations.store.answer_ref(answer_id)
    return ref if ref is not None and ref.conversation.key.team_id == team_id else None
