"""Writing one streamed answer into Slack: one writer task per answer, one loop for every way of writing.

The task does all of the answer's Slack I/O, so updates never race or arrive out of order, and each update
carries the newest text (a 429 or a passing failure is answered with a fresher update, never a stale retry).
An answer spans one or more Slack messages ("parts"). Each part is written by a strategy: `_Updated` (a
posted message edited with chat.update, Tier 3) or `_Streamed` (Slack's native stream: chat.startStream,
appendStream at Tier 4, stopStream). The loop owns what they share (waking, the final text and its notes,
cutting long answers, failures, the pacer's bookkeeping); the strategies differ only where Slack does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.pacing import REPOST_AFTER, cheaper_to_repost, update_priority
from bot.core.splitting import MESSAGE_LIMIT, ends_in_code, render_part, split_head, stream_cut
from bot.slack.api import RateLimited, SlackApi, SlackCallError
from bot.slack.pacer import Clock

log = logging.getLogger(__name__)

THINKING = "_Thinking…_"
CURSOR = " ▍"
# An answer's intermediate updates are at least this far apart; the budget may space them further.
MIN_UPDATE_INTERVAL = 1.0
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

ProgressHook = Callable[[], Awaitable[None]]


def with_notes(text: str, notes: Sequence[str]) -> str:
    """An answer followed by its notes (interrupted, cut short...), each an italic warning line."""
    return "\n\n".join([text] * bool(text) + [f"_⚠️ {note}_" for note in notes])


class Writer(Protocol):
    """What a conversation needs from Slack-out to show one answer."""

    on_progress: ProgressHook | None

    @property
    def parts(self) -> list[str]:
        """The ts of every Slack message the answer spans, in order."""
        ...

    async def start(self, status: str = THINKING) -> None: ...

    def set_status(self, status: str) -> None: ...

    def append(self, text: str) -> None: ...

    async def finish(self, notes: Sequence[str] = ()) -> None: ...

    async def abort(self) -> None: ...


class _SplitSmaller(Exception):
    """Slack refused a part as too long: cut the answer again with a smaller limit."""


@dataclass
class _Part:
    """One Slack message of an answer, showing the display text from `start` on."""

    ts: str
    start: int
    streamed: bool
    shown: str = ""  # chat.update: the text Slack shows; a stream: the Markdown appended so far
    opens_in_code: bool = False  # the part continues a code block cut at the end of the previous one


class Writers:
    """Makes each answer's writer, and remembers the channels where Slack refused native streaming."""

    REFUSED_CAP = 10_000  # channels remembered; the oldest are forgotten (and tried again) first

    def __init__(
        self, api: SlackApi, *, mode: str = "auto", clock: Clock = time.monotonic, min_interval: float = 1.0
    ) -> None:
        self.api = api
        self.mode = mode
        self.clock = clock
        self.min_interval = min_interval
        self._refused: OrderedDict[tuple[str, str], None] = OrderedDict()

    def new(self, team_id: str, channel: str, thread_ts: str, *, recipient_user_id: str) -> AnswerWriter:
        return AnswerWriter(self, team_id, channel, thread_ts, recipient_user_id)

    def wants_native(self, team_id: str, channel: str) -> bool:
        """Native streaming where Slack allows it and its Tier 2 budget has room for a start and a stop."""
        if self.mode == "native":
            return True
        if self.mode != "auto" or (team_id, channel) in self._refused:
            return False
        return self.api.pacer(team_id).native_has_room()

    def refused(self, team_id: str, channel: str, error: str) -> None:
        if error not in ("channel_type_not_supported", "feature_not_enabled", "missing_scope", "unknown_method"):
            return  # about this stream only, not the channel
        log.info("Slack refused native streaming in %s (%s); using chat.update there", channel, error)
        self._refused[(team_id, channel)] = None
        while len(self._refused) > self.REFUSED_CAP:
            self._refused.popitem(last=False)


class AnswerWriter:
    """Writes one streamed answer into one or more Slack messages in a thread."""

    def __init__(self, writers: Writers, team_id: str, channel: str, thread_ts: str, recipient_user_id: str) -> None:
        self._writers = writers
        self.api = writers.api
        self.team_id = team_id
        self.channel = channel
        self.thread_ts = thread_ts
        self.recipient_user_id = recipient_user_id
        self.clock = writers.clock
        self.min_interval = writers.min_interval
        self.limit = MESSAGE_LIMIT
        self.on_progress: ProgressHook | None = None

        self.raw = ""
        self._parts: list[_Part] = []
        self._status = THINKING
        self._status_changed = False
        self._notes: Sequence[str] = ()
        self._final = False
        self._last_flush = 0.0
        self._flushed_len = 0
        self._slot_held: str | None = None  # the method whose slot the loop already holds
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._registered: str | None = None  # which of the pacer's counts this answer is in

    @property
    def parts(self) -> list[str]:
        return [p.ts for p in self._parts]

    @property
    def _part(self) -> _Part:
        return self._parts[-1]

    # what the conversation calls ---------------------------------------------------------------------

    async def start(self, status: str = THINKING) -> None:
        """Show the first sign of life (a native stream, else a placeholder) and start the writer task.

        The way of writing is chosen here, when the answer's turn has come, not when it was queued.
        """
        self._status = status
        streamed = bool(self.recipient_user_id) and self._writers.wants_native(self.team_id, self.channel)
        if not (streamed and await self._open_stream(0)):
            await self._open_update(0, status)
        self._last_flush = self.clock()
        self._task = asyncio.create_task(self._run(), name=f"answer-writer-{self.channel}-{self._part.ts}")

    def set_status(self, status: str) -> None:
        """Text shown while no answer text has arrived (retrying, waiting for the thread's turn)."""
        self._status = status
        self._status_changed = True
        self._wake.set()

    def append(self, text: str) -> None:
        """More of the answer. Raises the writer's own failure, so the model stream stops at once."""
        self._raise_failure()
        self.raw += text
        self._wake.set()

    async def finish(self, notes: Sequence[str] = ()) -> None:
        """Show the complete text (and notes under it) and wait until Slack has it; raises what stopped it."""
        assert self._task is not None, "start() first"
        self._notes = notes
        self._final = True
        self._finished.set()
        self._wake.set()
        if self._task.done() and self._task.cancelled():
            # The last writer task was cancelled mid-update: a fresh one resends what is missing.
            self._task = asyncio.create_task(self._run(), name=self._task.get_name())
        try:
            await self._task
        finally:
            self._register(None)

    async def abort(self) -> None:
        """Stop writing without a final update."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # its failure, if any, is retrieved
        self._register(None)

    def _raise_failure(self) -> None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if error is not None:
                raise error

    # the loop ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._until_due()
            status_changed, self._status_changed = self._status_changed, False
            final = self._final
            try:
                await self._sync(final, status_changed=status_changed)
            except (RateLimited, _SplitSmaller):
                self._wake.set()  # the pacer now knows to wait; the next try sends fresher text
                continue
            except SlackCallError as exc:
                if self._part.streamed and exc.error in NATIVE_REFUSALS:
                    await self._leave_stream(exc.error)
                elif exc.transient and not final:
                    log.info("Slack %s failed (%s); the next update carries on", exc.method, exc.error)
                    self._last_flush = self.clock()  # space the next try like any update
                else:
                    raise
                self._wake.set()
                continue
            if final:
                return

    async def _until_due(self) -> None:
        """Wait for news, then until an update is due: intermediate updates no sooner than `min_interval`
        after the last one; the final text, and a new status while no text is shown, at once."""
        await self._wake.wait()
        self._wake.clear()
        while not (self._final or (self._status_changed and not self.raw)):
            gap = self._last_flush + self.min_interval - self.clock()
            if gap <= 0:
                return
            try:
                async with asyncio.timeout(gap):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def _display(self, final: bool) -> str:
        return with_notes(self.raw, self._notes) if final else self.raw

    async def _sync(self, final: bool, *, status_changed: bool = False) -> None:
        self._slot_held = None
        if status_changed and not final and not self.raw and self._part.streamed and not self._part.shown:
            # Nothing streamed yet, and a stream cannot show a passing status (its text is append-only):
            # continue as a placeholder, which can.
            await self._leave_stream("status")
            return
        if not final:
            # The slot first, then the text: the update carries the newest text, and an answer that
            # finishes meanwhile leaves the queue for the final path, which may choose a cheaper route.
            method = "chat.appendStream" if self._part.streamed else "chat.update"
            held = await self.api.pacer(self.team_id).intermediate_slot(
                method, priority=self._priority, until=self._finished
            )
            self._slot_held = method if held else None
            final = self._final
        text = self._display(final)
        # Freeze every part that no longer fits, then continue in a new message.
        while cut := self._cut(text):
            end, resume = cut
            await self._close(text[self._part.start : end])
            if self._part.streamed:
                opens_in_code = ends_in_code(text[self._part.start : end], opens_in_code=self._part.opens_in_code)
                if not await self._open_stream(resume, opens_in_code):
                    await self._open_update(resume, "…", opens_in_code)
            else:
                rendered = render_part(text[self._part.start : end], opens_in_code=self._part.opens_in_code)
                await self._open_update(resume, "…", rendered.ends_in_code)
        if self.on_progress is not None:
            await self.on_progress()  # stored before it is shown: a crash never leaves Slack ahead of the store
        if self._part.streamed:
            await self._append(text[self._part.start :], final=final)
            if final:
                await self._stop()
        else:
            await self._update_text(text[self._part.start :], final=final)
        self._last_flush = self.clock()
        self._flushed_len = len(self.raw)

    def _priority(self) -> float:
        return update_priority(waited=self.clock() - self._last_flush, unseen_chars=len(self.raw) - self._flushed_len)

    def _cut(self, text: str) -> tuple[int, int] | None:
        """Where the current part must end (offsets in `text`), or None while it holds the rest."""
        part = self._part
        rest = text[part.start :]
        if part.streamed:
            prefix = len(_fence_open(part))
            cut = stream_cut(rest, sent=max(len(part.shown) - prefix, 0))
        else:
            split = split_head(rest, limit=self.limit, opens_in_code=part.opens_in_code)
            cut = (len(split[0]), len(rest) - len(split[1])) if split else None
        return (part.start + cut[0], part.start + cut[1]) if cut else None

    async def _call(self, method: str, *, urgent: bool, **payload: Any) -> dict[str, Any]:
        """A call that uses the slot the loop already holds for `method`, if it holds one."""
        held, self._slot_held = self._slot_held == method, None
        return await self.api.call(
            self.team_id,
            method,
            urgent=urgent,
            priority=self._priority,
            retry_rate_limited=urgent,
            slot_held=held,
            **payload,
        )

    def _register(self, count: str | None) -> None:
        """Keep the pacer's count of answers owed a final text (one per way of writing) up to date."""
        if count == self._registered:
            return
        pacer = self.api.pacer(self.team_id)
        if self._registered is not None:
            setattr(pacer, self._registered, getattr(pacer, self._registered) - 1)
        if count is not None:
            setattr(pacer, count, getattr(pacer, count) + 1)
        self._registered = count

    async def _close(self, head: str) -> None:
        """The current part shows exactly `head` (the end of its share of the answer), for good."""
        if self._part.streamed:
            await self._append(head, final=True)
            if ends_in_code(head, opens_in_code=self._part.opens_in_code):
                await self._call("chat.appendStream", urgent=True, channel=self.channel, ts=self._part.ts,
                                 markdown_text="\n```")  # fmt: skip
            await self._stop()
        else:
            await self._show(render_part(head, opens_in_code=self._part.opens_in_code).text, urgent=True)

    # chat.update -------------------------------------------------------------------------------------

    async def _open_update(self, start: int, body: str, opens_in_code: bool = False) -> bool:
        data = await self.api.post(self.team_id, self.channel, body, thread_ts=self.thread_ts)
        self._parts.append(_Part(str(data["ts"]), start, streamed=False, shown=body, opens_in_code=opens_in_code))
        self._register("answers_in_flight")
        return True

    async def _update_text(self, rest: str, *, final: bool) -> None:
        body = render_part(rest, opens_in_code=self._part.opens_in_code).text.rstrip() or "…"
        if not final:
            body = body + CURSOR if body != "…" else self._status
            await self._show(body, urgent=False)
        elif not await self._final_slot(body):
            await self._repost(body)
        else:
            await self._show(body, urgent=True)

    async def _show(self, text: str, *, urgent: bool) -> None:
        part = self._part
        if part.shown == text:
            self._slot_held = None
            return
        try:
            await self._call("chat.update", urgent=urgent, channel=self.channel, ts=part.ts, text=text)
        except SlackCallError as exc:
            if exc.error == "msg_too_long" and self.limit > 500:
                # Slack's real limit is lower than ours for this text: cut smaller and start over.
                self.limit = int(self.limit * 0.75)
                log.warning("msg_too_long; splitting answers at %d characters", self.limit)
                raise _SplitSmaller from None
            raise
        part.shown = text

    async def _final_slot(self, body: str) -> bool:
        """Hold a chat.update slot for the final text (True), or decide that reposting is faster (False).

        Reconsidered every REPOST_AFTER seconds: other answers' finals may be queued ahead of this one.
        """
        if self._slot_held == "chat.update" or self._part.shown == body:
            return True
        pacer = self.api.pacer(self.team_id)
        waited = 0.0
        while True:
            now = self.clock()
            if cheaper_to_repost(
                update_wait=max(pacer.budget.wait_time("chat.update", now), waited),
                post_wait=pacer.budget.wait_time(f"chat.postMessage#{self.channel}", now),
                delete_wait=pacer.budget.wait_time("chat.delete", now),
            ):
                return False
            if await pacer.slot_within("chat.update", seconds=REPOST_AFTER):
                self._slot_held = "chat.update"
                return True
            waited += REPOST_AFTER

    async def _repost(self, body: str) -> None:
        """Post the final part as a new message, then remove the stale one it replaces."""
        stale = self._part
        data = await self.api.post(self.team_id, self.channel, body, thread_ts=self.thread_ts)
        self._parts[-1] = _Part(str(data["ts"]), stale.start, False, body, stale.opens_in_code)
        if self.on_progress is not None:
            await self.on_progress()  # the store points at the new message before the old one goes
        await self.api.delete(self.team_id, self.channel, stale.ts)

    # native streams ------------------------------------------------------------------------------------

    async def _open_stream(self, start: int, opens_in_code: bool = False) -> bool:
        """Start a native stream for the text from `start`; False when Slack will not (write it another way)."""
        pacer = self.api.pacer(self.team_id)
        pacer.native_starting += 1
        try:
            data = await self.api.call(
                self.team_id,
                "chat.startStream",
                retry_rate_limited=False,
                channel=self.channel,
                thread_ts=self.thread_ts,
                recipient_user_id=self.recipient_user_id,
                recipient_team_id=self.team_id,
            )
        except RateLimited:
            return False  # Tier 2 is smaller than we thought: chat.update now beats a stream in a minute
        except SlackCallError as exc:
            if exc.error not in NATIVE_REFUSALS and not exc.transient:
                raise
            self._writers.refused(self.team_id, self.channel, exc.error)
            return False
        finally:
            pacer.native_starting -= 1
        self._parts.append(_Part(str(data["ts"]), start, streamed=True, opens_in_code=opens_in_code))
        self._register("native_in_flight")
        return True

    async def _append(self, rest: str, *, final: bool) -> None:
        """Append what the stream lacks of `rest` (all of it when final, else one append's worth)."""
        part = self._part
        markdown = _fence_open(part) + rest
        while len(part.shown) < len(markdown):
            chunk = markdown[len(part.shown) : len(part.shown) + APPEND_LIMIT]
            await self._call("chat.appendStream", urgent=final, channel=self.channel, ts=part.ts, markdown_text=chunk)
            part.shown += chunk
            if not final:
                break
        self._slot_held = None

    async def _stop(self) -> None:
        # The whole text is already visible: closing the stream may wait for the Tier 2 budget.
        self._register(None)  # no longer owed a stop; the part that follows, if any, registers itself
        try:
            await self.api.call(self.team_id, "chat.stopStream", urgent=False, channel=self.channel, ts=self._part.ts)
        except (SlackCallError, RateLimited) as exc:
            log.info("could not stop the stream in %s (%s); Slack closes it after a while", self.channel, exc)

    async def _leave_stream(self, why: str) -> None:
        """Continue the answer with chat.update from the first character the stream does not show."""
        part = self._part
        log.info("native stream in %s ends (%s); continuing with chat.update", self.channel, why)
        self._writers.refused(self.team_id, self.channel, why)
        sent = max(len(part.shown) - len(_fence_open(part)), 0)
        if not part.shown and await self.api.delete(self.team_id, self.channel, part.ts):
            self._parts.pop()  # an empty stream: the placeholder replaces it
        elif why != "message_not_in_streaming_state":
            await self._stop()  # Slack refuses chat.update and chat.delete on a message still streaming
        await self._open_update(part.start + sent, self._status if not self.raw else "…", part.opens_in_code)


def _fence_open(part: _Part) -> str:
    return "```\n" if part.opens_in_code else ""
