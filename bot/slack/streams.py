"""Slack's native streams for an answer's messages: `StreamedMessage` (chat.startStream, chat.appendStream at
Tier 4, chat.stopStream at Tier 2) and `StoppedStream`, a stream a person stopped in Slack.

A stream shows Markdown as Slack renders it. It ends before it holds 12,000 characters in all and before
Slack expires it (about five minutes after its start); its appends carry whole words, so a stream that ends
early never splits one. A person may press stop in Slack: every later call on the stream answers
`stopped_by_user`, which is the end of the answer, never a refusal to fall back from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bot.core.splitting import ends_in_code, stream_append_end, stream_cut, stream_rollover
from bot.slack.api import RateLimited, SlackCallError
from bot.slack.blocks import MARKDOWN_LIMIT, Block, fallback_text, markdown
from bot.slack.parts import Answer, OfAnswer

log = logging.getLogger(__name__)

# How long a new stream may wait for a chat.startStream slot before the answer goes by chat.update instead.
START_WAIT = 0.5
# One append carries at most this much Markdown (Slack's limit is 12,000 characters a payload).
APPEND_LIMIT = 11_000
# A person pressed stop on the stream in Slack: never a refusal (nothing falls back to chat.update as if
# streaming failed), the end of the answer.
STOPPED_BY_USER = "stopped_by_user"
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


def _reopened_fence(opens_in_code: bool) -> str:
    """What a streamed message's Markdown starts with: a fence when it continues a code block that the previous
    message was cut in."""
    return "```\n" if opens_in_code else ""


class StreamStopped(Exception):
    """A person stopped `stream` in Slack: no more calls on it."""

    def __init__(self, stream: StreamedMessage) -> None:
        super().__init__(f"stream {stream.ts} stopped by a person")
        self.stream = stream


class StreamedMessage(OfAnswer):
    streamed = True
    method = "chat.appendStream"
    count = "native_in_flight"

    def __init__(self, answer: Answer, ts: str, start: int, opens_in_code: bool, started: float) -> None:
        super().__init__(answer)
        self.ts = ts
        self.start = start
        self.opens_in_code = opens_in_code
        self.started = started  # on the answer's clock, just before chat.startStream: Slack expires it from then
        self.markdown = ""  # what Slack has been sent (a reopened code fence, then the answer's text)
        self.stopped = False  # stopped by the call that showed the end of the text

    @staticmethod
    def first_markdown(rest: str, opens_in_code: bool, *, final: bool) -> str:
        """What a new stream's chat.startStream shows of `rest` (the text from its start): what an append
        would carry, or nothing when `rest` is long enough to be cut first (the loop's appends do that)."""
        if not rest or stream_cut(rest, sent=0):
            return ""
        markdown_text = _reopened_fence(opens_in_code) + rest
        return markdown_text[: stream_append_end(markdown_text, sent=0, final=final, limit=APPEND_LIMIT)]

    @classmethod
    async def open(
        cls, answer: Answer, start: int, opens_in_code: bool = False, first: str = ""
    ) -> StreamedMessage | str:
        """Start a stream for the text from `start`, showing `first` (`first_markdown`) at once: one call
        where a start and an append would be two. Slack's reason (an error code) when it will not."""
        a = answer
        pacer = a.api.pacer(a.team_id)
        pacer.native_starting += 1
        started = a.clock()
        try:
            # A start that would wait is no start: other replicas may have taken Tier 2's slots meanwhile,
            # and chat.update shows the answer now instead of in a minute.
            if not await pacer.slot_within("chat.startStream", seconds=START_WAIT):
                return "ratelimited"
            data = await a.api.call(
                a.team_id,
                "chat.startStream",
                slot_held=True,
                retry_rate_limited=False,
                channel=a.channel,
                thread_ts=a.thread_ts,
                recipient_user_id=a.recipient_user_id,
                recipient_team_id=a.team_id,
                **({"markdown_text": first} if first else {}),
            )
        except RateLimited:
            return "ratelimited"  # Tier 2 is smaller than we thought: chat.update now beats a stream in a minute
        except SlackCallError as exc:
            if exc.error not in NATIVE_REFUSALS and not exc.transient:
                raise
            return exc.error
        finally:
            pacer.native_starting -= 1
        stream = cls(a, str(data["ts"]), start, opens_in_code, started)
        stream.markdown = first
        return stream

    @property
    def sent(self) -> int:
        """Characters of the answer's text (from `start`) that Slack has."""
        return max(len(self.markdown) - len(_reopened_fence(self.opens_in_code)), 0)

    def cut(self, rest: str) -> tuple[int, int] | None:
        age = self.answer.clock() - self.started
        return stream_cut(rest, sent=self.sent) or stream_rollover(
            rest, sent=self.sent, age=age, max_age=self.answer.stream_max_age
        )

    def next_opens_in_code(self, head: str) -> bool:
        return ends_in_code(head, opens_in_code=self.opens_in_code)

    async def show(self, rest: str, *, final: bool) -> None:
        if final and await self._stop_with(rest):
            return
        await self._append(rest, final=final)

    async def end(self) -> None:
        if self.stopped:
            return  # the stop carried the end of the text and the controls
        controls = self.answer.final_controls()
        try:
            stopped = await self.stop(controls)
        except StreamStopped:
            stopped = False  # the whole text showed, then a person pressed stop before ours went
        if not stopped and controls:
            # The stop did not carry the controls (a person's stop came first, or Slack expired the stream while
            # the stop waited for Tier 2): they still belong under the answer.
            a = self.answer
            blocks = [markdown(self.markdown), *controls]
            try:
                await a.call(
                    "chat.update", urgent=False, channel=a.channel, ts=self.ts, text=self._fallback(), blocks=blocks
                )
            except (SlackCallError, RateLimited) as exc:
                log.info("could not add the controls to a stopped stream in %s: %s", a.channel, exc)

    async def close(self, head: str) -> None:
        await self._append(head, final=True)
        if self.next_opens_in_code(head):
            await self._call("chat.appendStream", urgent=True, markdown_text="\n```")
        await self.stop()

    async def _stop_with(self, rest: str) -> bool:
        """Show the rest of the text with the stop, and the final controls under it: one call where an append
        and a stop would be two. Only when a stop slot is free now: the final text never waits for Tier 2
        (a 429 leaves it to an append too). False: nothing was sent."""
        a = self.answer
        remaining = (_reopened_fence(self.opens_in_code) + rest)[len(self.markdown) :]
        if not remaining or len(remaining) > APPEND_LIMIT:
            return False
        if not a.api.pacer(a.team_id).take_free("chat.stopStream", urgent=True):
            return False
        controls = a.final_controls()
        extra: dict[str, Any] = {"blocks": controls} if controls else {}
        try:
            await self._call(
                "chat.stopStream",
                urgent=True,
                api=True,
                slot_held=True,
                retry_rate_limited=False,
                markdown_text=remaining,
                **extra,
            )
        except RateLimited:
            return False
        self.markdown += remaining
        self.stopped = True
        return True

    async def stop(self, controls: Sequence[Block] = ()) -> bool:
        """Stop the stream, with the answer's final `controls` under it; raises `StreamStopped` when a person did.

        The whole text is already visible: the stop may wait for the Tier 2 budget, and other failures are
        only logged (Slack closes a stream after a while anyway). False when Slack did not take the stop.
        """
        a = self.answer
        extra: dict[str, Any] = {"blocks": list(controls)} if controls else {}
        try:
            await self._call("chat.stopStream", urgent=False, api=True, **extra)
        except (SlackCallError, RateLimited) as exc:
            log.info("could not stop the stream in %s (%s); Slack closes it after a while", a.channel, exc)
            return False
        return True

    async def _call(self, method: str, *, urgent: bool, api: bool = False, **payload: Any) -> None:
        """A call on this stream; `api`: not in the writer's held slot (a stop waits for its own)."""
        a = self.answer
        try:
            if api:
                await a.api.call(a.team_id, method, urgent=urgent, channel=a.channel, ts=self.ts, **payload)
            else:
                await a.call(method, urgent=urgent, channel=a.channel, ts=self.ts, **payload)
        except SlackCallError as exc:
            if exc.error == STOPPED_BY_USER:
                raise StreamStopped(self) from None
            raise

    async def _append(self, rest: str, *, final: bool) -> None:
        """Append what Slack lacks of `rest`: all of it when final, else one append's worth, in whole words."""
        markdown_text = _reopened_fence(self.opens_in_code) + rest
        while len(self.markdown) < len(markdown_text):
            end = stream_append_end(markdown_text, sent=len(self.markdown), final=final, limit=APPEND_LIMIT)
            if end <= len(self.markdown):
                break  # the rest is a word still being written
            chunk = markdown_text[len(self.markdown) : end]
            await self._call("chat.appendStream", urgent=final, markdown_text=chunk)
            self.markdown += chunk
            if not final:
                break

    def _fallback(self) -> str:
        return fallback_text(self.markdown) or "…"


class StoppedStream(OfAnswer):
    """A stream a person stopped in Slack. It keeps the text it showed; its final text (a note, the controls)
    replaces it through chat.update, in a markdown block as the stream rendered it (up to 12,000 characters,
    more than a section takes)."""

    streamed = False
    method = "chat.update"
    count = "answers_in_flight"

    def __init__(self, answer: Answer, stream: StreamedMessage) -> None:
        super().__init__(answer)
        self.ts = stream.ts
        self.start = stream.start
        self.opens_in_code = stream.opens_in_code

    def cut(self, rest: str) -> tuple[int, int] | None:
        return None  # its text no longer grows: only notes may follow it

    def next_opens_in_code(self, head: str) -> bool:
        return ends_in_code(head, opens_in_code=self.opens_in_code)

    async def show(self, rest: str, *, final: bool) -> None:
        if not final:
            return
        a = self.answer
        text = (_reopened_fence(self.opens_in_code) + rest) or "…"
        if len(text) > MARKDOWN_LIMIT:  # a stream stopped at its very end, and long notes
            text = text[: MARKDOWN_LIMIT - 1] + "…"
        blocks = [markdown(text), *a.final_controls()]
        await a.call(
            "chat.update", urgent=True, channel=a.channel, ts=self.ts, text=fallback_text(text) or "…", blocks=blocks
        )

    async def close(self, head: str) -> None:
        return None

    async def end(self) -> None:
        return None
