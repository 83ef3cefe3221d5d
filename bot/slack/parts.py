"""The Slack messages an answer is written into, one class for each way Slack offers, and what they share.

`UpdatedMessage` (here) is a posted message edited with chat.update (Tier 3); `StreamedMessage`
(`bot.slack.streams`) is Slack's native stream (chat.startStream, appendStream at Tier 4, stopStream), and
`StoppedStream` a stream a person stopped in Slack, finished with chat.update. All show the answer's text
from their `start` on, say where they must end (`cut`), show more of it (`show`) and end for good (`close`);
the writer loop in `bot.slack.answer_writer` drives them alike, so they differ only where Slack does.

An edited message carries its text in a section block, under which go its controls (`bot.slack.blocks`): Stop
while it is written, feedback and Regenerate (or Try again) once the answer is complete, none on the earlier
messages of a long answer. A stream gets the final controls with its chat.stopStream.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.core.pacing import REPOST_AFTER, cheaper_to_repost
from bot.core.splitting import render_part, split_head
from bot.slack.api import SlackApi, SlackCallError
from bot.slack.blocks import Block, message_blocks, writing_controls

log = logging.getLogger(__name__)

CURSOR = " ▍"


class SplitSmaller(Exception):
    """Slack refused a part as too long: cut the answer again with a smaller limit."""


class Answer(Protocol):
    """What a message needs from the answer it shows (`bot.slack.writers.AnswerWriter`)."""

    api: SlackApi
    team_id: str
    channel: str
    thread_ts: str
    recipient_user_id: str
    answer_id: int  # the store's id, in every control's value
    status: str  # shown while no text has arrived
    limit: int  # chat.update's cut, lowered when Slack answers msg_too_long
    stream_max_age: float  # seconds after its start when a stream ends and a new one continues it
    clock: Callable[[], float]  # the writer's clock, which stream ages are measured on
    on_progress: Callable[[], Awaitable[None]] | None

    async def call(self, method: str, *, urgent: bool, **payload: Any) -> dict[str, Any]:
        """A paced call that uses the slot the writer already holds for `method`, if any."""
        ...

    def holds_slot(self, method: str) -> bool: ...

    def hold_slot(self, method: str) -> None: ...

    def final_controls(self) -> list[Block]:
        """The controls under the complete answer (feedback, Regenerate or Try again)."""
        ...

    async def posted(self) -> None:
        """A message of the answer was posted in the thread (the store learns its ts)."""
        ...


class OfAnswer:
    """A message's link back to the writer of its answer. The writer holds its messages, so a strong link
    back would make every answer a reference cycle: freed only by the cyclic garbage collector's rare full
    passes, a burst of answers at a time, which leaves the allocator's memory fragmented and growing."""

    def __init__(self, answer: Answer) -> None:
        self._answer = weakref.ref(answer)

    @property
    def answer(self) -> Answer:
        answer = self._answer()
        if answer is None:
            raise ReferenceError("the writer of this message is gone")
        return answer


class Part(Protocol):
    ts: str  # "" until the message is posted
    start: int  # where in the answer's display text this message begins
    opens_in_code: bool  # it continues a code block cut at the end of the previous message
    streamed: bool
    method: str  # the call its intermediate updates use, for the pacer
    count: str  # the pacer's count of answers this kind of message is in: each is owed a final call

    def cut(self, rest: str) -> tuple[int, int] | None:
        """Where this message must end in `rest` (the text from `start`), as (end, resume), or None."""
        ...

    def next_opens_in_code(self, head: str) -> bool: ...

    async def show(self, rest: str, *, final: bool) -> None: ...

    async def close(self, head: str) -> None:
        """Show exactly `head`, for good: the rest of the answer continues in another message."""
        ...

    async def end(self) -> None:
        """After the final text is visible: whatever Slack still needs (a stream's stop), however long it waits."""
        ...


class UpdatedMessage(OfAnswer):
    """A message edited with chat.update. Made unposted (`ts` ""), its first text is posted: one call, not a
    placeholder and then an edit."""

    streamed = False
    method = "chat.update"
    count = "answers_in_flight"

    def __init__(self, answer: Answer, ts: str, start: int, opens_in_code: bool = False) -> None:
        super().__init__(answer)
        self.ts = ts
        self.start = start
        self.shown: tuple[str, list[Block]] | None = None  # the text and blocks Slack shows, when known
        self.opens_in_code = opens_in_code

    @classmethod
    async def post(cls, answer: Answer, start: int, body: str, opens_in_code: bool = False) -> UpdatedMessage:
        """A placeholder showing `body` (the status) with a Stop button, posted now."""
        message = cls(answer, "", start, opens_in_code)
        await message._edit(body, writing_controls(answer.answer_id), urgent=True, announce=False)
        return message

    @classmethod
    async def reopen(cls, answer: Answer, ts: str) -> UpdatedMessage:
        """An earlier answer's first message, re-written in place: the status and a Stop button, for now."""
        message = cls(answer, ts, 0)
        await message._edit(answer.status, writing_controls(answer.answer_id), urgent=True)
        return message

    def cut(self, rest: str) -> tuple[int, int] | None:
        split = split_head(rest, limit=self.answer.limit, opens_in_code=self.opens_in_code)
        return (len(split[0]), len(rest) - len(split[1])) if split else None

    def next_opens_in_code(self, head: str) -> bool:
        return render_part(head, opens_in_code=self.opens_in_code).ends_in_code

    async def show(self, rest: str, *, final: bool) -> None:
        body = render_part(rest, opens_in_code=self.opens_in_code).text.rstrip() or "…"
        if not final:
            text = body + CURSOR if body != "…" else self.answer.status
            # An unposted message's first text is news: it goes at once.
            await self._edit(text, writing_controls(self.answer.answer_id), urgent=not self.ts)
            return
        controls = self.answer.final_controls()
        if not self.ts or await self._final_slot((body, message_blocks(body, controls))):
            await self._edit(body, controls, urgent=True)
        else:
            await self._repost(body, controls)

    async def close(self, head: str) -> None:
        await self._edit(render_part(head, opens_in_code=self.opens_in_code).text, [], urgent=True)

    async def end(self) -> None:
        return None  # an edited message needs nothing more

    async def _edit(self, text: str, controls: list[Block], *, urgent: bool, announce: bool = True) -> None:
        """Show `text` (in a section) and `controls`: chat.update, or chat.postMessage while unposted."""
        blocks = message_blocks(text, controls)
        if self.shown == (text, blocks):
            return
        a = self.answer
        try:
            if self.ts:
                await a.call("chat.update", urgent=urgent, channel=a.channel, ts=self.ts, text=text, blocks=blocks)
            else:
                data = await a.api.post(a.team_id, a.channel, text, thread_ts=a.thread_ts, blocks=blocks)
                self.ts = str(data["ts"])
                self.shown = (text, blocks)
                if announce:
                    await a.posted()
        except SlackCallError as exc:
            if exc.error == "msg_too_long" and a.limit > 500:
                # Slack's real limit is lower than ours for this text: cut smaller and start over.
                a.limit = int(a.limit * 0.75)
                log.warning("msg_too_long; splitting answers at %d characters", a.limit)
                raise SplitSmaller from None
            raise
        self.shown = (text, blocks)

    async def _final_slot(self, target: tuple[str, list[Block]]) -> bool:
        """Hold a chat.update slot for the final text (True), or decide that reposting is faster (False).

        Reconsidered every REPOST_AFTER seconds: other answers' finals may be queued ahead of this one.
        """
        if self.answer.holds_slot("chat.update") or self.shown == target:
            return True
        pacer = self.answer.api.pacer(self.answer.team_id)
        waited = 0.0
        while True:
            now = pacer.now()
            if cheaper_to_repost(
                update_wait=max(pacer.budget.wait_time("chat.update", now), waited),
                post_wait=pacer.budget.wait_time(f"chat.postMessage#{self.answer.channel}", now),
                delete_wait=pacer.budget.wait_time("chat.delete", now),
            ):
                return False
            if await pacer.slot_within("chat.update", seconds=REPOST_AFTER):
                self.answer.hold_slot("chat.update")
                return True
            waited += REPOST_AFTER

    async def _repost(self, body: str, controls: list[Block]) -> None:
        """Post the final text as a new message, then remove the stale one it replaces."""
        a = self.answer
        stale, self.ts, self.shown = self.ts, "", None
        try:
            await self._edit(body, controls, urgent=True)  # posted: the store points at it before the old one goes
        finally:
            if not self.ts:
                self.ts = stale  # not posted: the stale message is still the one to finish
        await a.api.delete(a.team_id, a.channel, stale)
