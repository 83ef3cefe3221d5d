"""The Slack messages an answer is written into, one class for each way Slack offers.

`UpdatedMessage` is a posted message edited with chat.update (Tier 3); `StreamedMessage` is Slack's native
stream (chat.startStream, appendStream at Tier 4, stopStream). Both show the answer's text from their
`start` on, say where they must end (`cut`), show more of it (`show`) and end for good (`close`); the writer
loop in `bot.slack.writers` drives them alike, so they differ only where Slack does. A stream ends before it
holds 12,000 characters of Markdown in all, and before Slack expires it (about five minutes after its start).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.core.pacing import REPOST_AFTER, cheaper_to_repost
from bot.core.splitting import (
    ends_in_code,
    render_part,
    split_head,
    stream_append_end,
    stream_cut,
    stream_rollover,
)
from bot.slack.api import RateLimited, SlackApi, SlackCallError

log = logging.getLogger(__name__)

CURSOR = " ▍"
# One append carries at most this much Markdown (Slack's limit is 12,000 characters a payload).
APPEND_LIMIT = 11_000
# Errors after which the rest of the answer goes out through chat.update instead of a native stream.
NATIVE_REFUSALS = frozenset(
    {
        "channel_type_not_supported",
        "message_not_in_streaming_state",
        "method_deprecated",
        "unknown_method",
        "not_allowed_token_type",
        "invalid_arguments",
        "feature_not_enabled",
        "msg_too_long",
        "missing_scope",
        "missing_recipient_user_id",
        "missing_recipient_team_id",
        "message_not_owned_by_app",
        "invalid_chunks",
    }
)


class SplitSmaller(Exception):
    """Slack refused a part as too long: cut the answer again with a smaller limit."""


class Answer(Protocol):
    """What a message needs from the answer it shows (`bot.slack.writers.AnswerWriter`)."""

    api: SlackApi
    team_id: str
    channel: str
    thread_ts: str
    recipient_user_id: str
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


class Part(Protocol):
    ts: str
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


class UpdatedMessage:
    streamed = False
    method = "chat.update"
    count = "answers_in_flight"

    def __init__(self, answer: Answer, ts: str, start: int, shown: str, opens_in_code: bool) -> None:
        self.answer = answer
        self.ts = ts
        self.start = start
        self.shown = shown  # the text Slack shows
        self.opens_in_code = opens_in_code

    @classmethod
    async def post(cls, answer: Answer, start: int, body: str, opens_in_code: bool = False) -> UpdatedMessage:
        data = await answer.api.post(answer.team_id, answer.channel, body, thread_ts=answer.thread_ts)
        return cls(answer, str(data["ts"]), start, body, opens_in_code)

    def cut(self, rest: str) -> tuple[int, int] | None:
        split = split_head(rest, limit=self.answer.limit, opens_in_code=self.opens_in_code)
        return (len(split[0]), len(rest) - len(split[1])) if split else None

    def next_opens_in_code(self, head: str) -> bool:
        return render_part(head, opens_in_code=self.opens_in_code).ends_in_code

    async def show(self, rest: str, *, final: bool) -> None:
        body = render_part(rest, opens_in_code=self.opens_in_code).text.rstrip() or "…"
        if not final:
            await self._edit(body + CURSOR if body != "…" else self.answer.status, urgent=False)
        elif await self._final_slot(body):
            await self._edit(body, urgent=True)
        else:
            await self._repost(body)

    async def close(self, head: str) -> None:
        await self._edit(render_part(head, opens_in_code=self.opens_in_code).text, urgent=True)

    async def end(self) -> None:
        return None  # an edited message needs nothing more

    async def _edit(self, text: str, *, urgent: bool) -> None:
        if self.shown == text:
            return
        try:
            await self.answer.call("chat.update", urgent=urgent, channel=self.answer.channel, ts=self.ts, text=text)
        except SlackCallError as exc:
            if exc.error == "msg_too_long" and self.answer.limit > 500:
                # Slack's real limit is lower than ours for this text: cut smaller and start over.
                self.answer.limit = int(self.answer.limit * 0.75)
                log.warning("msg_too_long; splitting answers at %d characters", self.answer.limit)
                raise SplitSmaller from None
            raise
        self.shown = text

    async def _final_slot(self, body: str) -> bool:
        """Hold a chat.update slot for the final text (True), or decide that reposting is faster (False).

        Reconsidered every REPOST_AFTER seconds: other answers' finals may be queued ahead of this one.
        """
        if self.answer.holds_slot("chat.update") or self.shown == body:
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

    async def _repost(self, body: str) -> None:
        """Post the final text as a new message, then remove the stale one it replaces."""
        a = self.answer
        stale = self.ts
        data = await a.api.post(a.team_id, a.channel, body, thread_ts=a.thread_ts)
        self.ts, self.shown = str(data["ts"]), body
        if a.on_progress is not None:
            await a.on_progress()  # the store points at the new message before the old one goes
        await a.api.delete(a.team_id, a.channel, stale)


class StreamedMessage:
    streamed = True
    method = "chat.appendStream"
    count = "native_in_flight"

    def __init__(self, answer: Answer, ts: str, start: int, opens_in_code: bool, started: float) -> None:
        self.answer = answer
        self.ts = ts
        self.start = start
        self.opens_in_code = opens_in_code
        self.started = started  # on the answer's clock, just before chat.startStream: Slack expires it from then
        self.markdown = ""  # what Slack has been sent (a reopened code fence, then the answer's text)

    @classmethod
    async def open(cls, answer: Answer, start: int, opens_in_code: bool = False) -> StreamedMessage | str:
        """Start a stream for the text from `start`; Slack's reason (an error code) when it will not."""
        a = answer
        pacer = a.api.pacer(a.team_id)
        pacer.native_starting += 1
        started = a.clock()
        try:
            data = await a.api.call(
                a.team_id,
                "chat.startStream",
                retry_rate_limited=False,
                channel=a.channel,
                thread_ts=a.thread_ts,
                recipient_user_id=a.recipient_user_id,
                recipient_team_id=a.team_id,
            )
        except RateLimited:
            return "ratelimited"  # Tier 2 is smaller than we thought: chat.update now beats a stream in a minute
        except SlackCallError as exc:
            if exc.error not in NATIVE_REFUSALS and not exc.transient:
                raise
            return exc.error
        finally:
            pacer.native_starting -= 1
        return cls(a, str(data["ts"]), start, opens_in_code, started)

    @property
    def sent(self) -> int:
        """Characters of the answer's text (from `start`) that Slack has."""
        return max(len(self.markdown) - len(self._fence()), 0)

    def cut(self, rest: str) -> tuple[int, int] | None:
        age = self.answer.clock() - self.started
        return stream_cut(rest, sent=self.sent) or stream_rollover(
            rest, sent=self.sent, age=age, max_age=self.answer.stream_max_age
        )

    def next_opens_in_code(self, head: str) -> bool:
        return ends_in_code(head, opens_in_code=self.opens_in_code)

    async def show(self, rest: str, *, final: bool) -> None:
        await self._append(rest, final=final)

    async def end(self) -> None:
        await self.stop()

    async def close(self, head: str) -> None:
        await self._append(head, final=True)
        if self.next_opens_in_code(head):
            await self.answer.call(
                "chat.appendStream", urgent=True, channel=self.answer.channel, ts=self.ts, markdown_text="\n```"
            )
        await self.stop()

    async def stop(self) -> None:
        # The whole text is already visible: closing the stream may wait for the Tier 2 budget.
        a = self.answer
        try:
            await a.api.call(a.team_id, "chat.stopStream", urgent=False, channel=a.channel, ts=self.ts)
        except (SlackCallError, RateLimited) as exc:
            log.info("could not stop the stream in %s (%s); Slack closes it after a while", a.channel, exc)

    async def _append(self, rest: str, *, final: bool) -> None:
        """Append what Slack lacks of `rest`: all of it when final, else one append's worth, in whole words."""
        markdown = self._fence() + rest
        while len(self.markdown) < len(markdown):
            end = stream_append_end(markdown, sent=len(self.markdown), final=final, limit=APPEND_LIMIT)
            if end <= len(self.markdown):
                break  # the rest is a word still being written
            chunk = markdown[len(self.markdown) : end]
            await self.answer.call(
                "chat.appendStream", urgent=final, channel=self.answer.channel, ts=self.ts, markdown_text=chunk
            )
            self.markdown += chunk
            if not final:
                break

    def _fence(self) -> str:
        return "```\n" if self.opens_in_code else ""
