"""No answer is left half-written when a process dies: leases on answers in flight, and taking over the answers
whose lease lapsed.

Every answer a process writes is leased to it in the store, and `Takeover.run` renews those leases every third
of the lease's length. A process that dies (kill -9, a host lost) renews nothing, so its leases lapse; a process
that stops gracefully lets them go at once (`Conversations.drain`). Each sweep then takes such answers over,
each by one process, and continues it: the model gets the history with the text shown so far as an assistant
`prefix`, and the answer goes on in the same Slack message. An answer asked longer ago than `resume_within`
is not continued (the thread has moved on): it is marked interrupted, with Try again.

With SQLite, the only process is the next start of the bot, which takes over at once (`Store.take_lapsed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.context import asked
from bot.conversation import Conversations, Identity
from bot.recovery import mark_interrupted, stop_stream_left_open
from bot.storage import AnswerRef, StoreError, Turn

log = logging.getLogger(__name__)

RESUME_WITHIN = 600.0  # seconds after its question an interrupted answer is still worth continuing


class Takeover:
    def __init__(
        self,
        conversations: Conversations,
        identity: Identity,
        *,
        resume_within: float = RESUME_WITHIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conversations = conversations
        self.store = conversations.store
        self.identity = identity
        self.resume_within = resume_within
        self._clock = clock

    async def run(self, stopping: asyncio.Event) -> None:
        """Every third of a lease, until cancelled: renew this process's leases, and take lapsed answers over
        until `stopping` is set (a stopping process still finishes its own answers, but takes on no others).

        Only on a shared database: on SQLite no other process runs, so no lease needs renewing, and its next
        start takes over whatever this one leaves.
        """
        if not self.store.shared:
            return
        every = self.store.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self.renew()
                if not stopping.is_set():
                    await self.sweep()
            except StoreError as exc:  # the database out of reach: the next round tries again
                log.warning("could not renew or take over answers: %s", exc)
            except Exception:  # never let one bad round end the leases of every answer in flight
                log.exception("renewing or taking over answers failed")

    async def renew(self) -> None:
        in_flight = self.conversations.in_flight()
        if in_flight:
            held = await self.store.renew_leases(in_flight)
            self.conversations.lost(set(in_flight) - held)

    async def sweep(self) -> int:
        """Take over every answer whose lease lapsed; returns how many."""
        writing = set(self.conversations.in_flight())
        taken = [ref for ref in await self.store.take_lapsed() if ref.answer_id not in writing]
        for ref in taken:
            if self._clock() - ref.asked_at > self.resume_within:
                log.info("answer %d was interrupted too long ago to continue; marking it", ref.answer_id)
                await mark_interrupted(self.store, self.conversations.out, ref)
            else:
                await self._resume(ref)
        return len(taken)

    async def _resume(self, ref: AnswerRef) -> None:
        message = await asked(self.store, ref, ref.asker or "")
        if message is None:  # its question was deleted meanwhile: nothing to continue
            await mark_interrupted(self.store, self.conversations.out, ref)
            return
        key = ref.conversation.key
        if ref.slack_parts:
            await stop_stream_left_open(self.conversations.out, key, ref.slack_parts[-1])
        log.info("taking over answer %d in %s (%d characters so far)", ref.answer_id, key.channel_id, len(ref.text))
        turn = Turn(ref.conversation, ref.user_message_id, ref.answer_id, ref.user_ts, created_conversation=False)
        self.conversations.start_turn(
            turn, message, self.identity, reuse=ref.slack_parts, backfill=False, resume=ref.text
        )
