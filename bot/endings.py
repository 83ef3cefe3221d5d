"""How an answer ends when it cannot end well: a clear note in the thread (or privately), and a consistent row.

Best effort throughout: Slack may refuse the note too, and the store must say partial or failed whatever
Slack does.
"""

from __future__ import annotations

import asyncio
import logging

from bot.answer import Answer
from bot.core.routing import Incoming
from bot.notes import CANNOT_POST, TRY_AGAIN, with_notes
from bot.ports import SlackOut
from bot.slack.api import RateLimited, SlackCallError
from bot.slack.blocks import final_controls, message_blocks
from bot.slack.writers import AnswerStopped
from bot.storage import Status, ThreadKey

log = logging.getLogger(__name__)

# How long a failure note may take to show before the answer is left as it is.
NOTE_TIMEOUT = 15.0


class Endings:
    def __init__(self, out: SlackOut) -> None:
        self.out = out

    async def with_note(self, answer: Answer, note: str, *, retry: bool, rerun: bool = True) -> None:
        """The note at the end of the answer (or alone, before the first sign of life); the row partial/failed."""
        writer = answer.writer
        writer.on_progress = None  # the final status below must not be overwritten by a progress save
        key = answer.turn.conversation.key
        try:
            if writer.started:
                async with asyncio.timeout(NOTE_TIMEOUT):
                    await writer.finish([note], retry=retry, rerun=rerun)
            else:  # stopped before the first sign of life
                await self.post_note(key, note, answer.turn.answer_id if retry and rerun else None)
        except (SlackCallError, RateLimited, TimeoutError, AnswerStopped) as exc:
            log.warning("could not show the failure note: %r", exc)
            await writer.abort()
        finally:
            await answer.save(answer.unfinished_status)

    async def post_note(self, key: ThreadKey, note: str, retry_answer: int | None) -> None:
        """A failure note as a message of its own, with the Try again button of `retry_answer`, if any."""
        text = with_notes("", [note])
        controls = final_controls(retry_answer, answered=False, retry=True) if retry_answer is not None else []
        blocks = message_blocks(text, controls) if controls else None
        extra = {"blocks": blocks} if blocks else {}
        await self.out.post(key.team_id, key.channel_id, text, thread_ts=key.thread_ts, **extra)

    async def undeliverable(self, exc: SlackCallError, message: Incoming, answer_id: int) -> None:
        """Slack would not take (the rest of) an answer: say so in the thread if it can, and privately."""
        log.warning("cannot write to %s (%s): %s", message.channel_id, exc.method, exc.error)
        if exc.error in CANNOT_POST:
            text = f"I couldn't post my answer there: {CANNOT_POST[exc.error]}"
        else:
            text = f"Slack didn't take my answer (it said `{exc.error}`), so it may be incomplete. {TRY_AGAIN}"
            try:  # a new message may get through where updating the old one failed
                key = ThreadKey(message.team_id, message.channel_id, message.thread_ts)
                await self.post_note(key, text, answer_id)
            except (SlackCallError, RateLimited) as post_exc:
                log.warning("could not post the failure note either: %s", post_exc)
        await self.out.ephemeral(message.team_id, message.channel_id, message.user_id, text, message.thread_ts)

    async def refused(self, answer: Answer, message: Incoming, note: str) -> None:
        """Past a quota: a private note for the asker and no model call; the thread shows nothing."""
        answer.streamed = True  # no model stream to stop
        try:
            thread = message.thread_ts if message.in_thread else None
            await self.out.ephemeral(message.team_id, message.channel_id, message.user_id, note, thread)
        except (SlackCallError, RateLimited) as exc:
            log.warning("could not tell %s about the quota: %r", message.user_id, exc)
        await answer.save(Status.FAILED)
