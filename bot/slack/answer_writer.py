"""One answer's writer: the task that does all of its Slack I/O, and the loop every way of writing shares.

Updates never race or arrive out of order, and each carries the newest text (a 429 or a passing failure is
answered with a fresher update, never a stale retry). The loop owns what the answer's messages
(`bot.slack.parts`) share: waking, the final text, its notes and controls, cutting long answers into
messages, falling back from a stream that Slack refuses, a person's stop, surfacing failures, and the
pacer's bookkeeping.

Until the first text arrives the answer shows Slack's loading state (`bot.slack.status`), not a message;
where Slack will not show one, a placeholder message as before. An answer re-written in place (Regenerate,
Try again) writes into its earlier first message and removes the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from bot.core.pacing import update_priority
from bot.core.splitting import MESSAGE_LIMIT
from bot.core.ticks import next_tick
from bot.notes import with_notes
from bot.slack.api import RateLimited, SlackCallError
from bot.slack.blocks import Block, final_controls
from bot.slack.pacer import OwedFinal
from bot.slack.parts import Part, SplitSmaller, UpdatedMessage
from bot.slack.status import THINKING, LoadingState
from bot.slack.streams import NATIVE_REFUSALS, StoppedStream, StreamedMessage, StreamStopped

if TYPE_CHECKING:
    from bot.slack.writers import Writers

log = logging.getLogger(__name__)

ProgressHook = Callable[[], Awaitable[None]]


class AnswerStopped(Exception):
    """A person stopped the answer's native stream in Slack. `AnswerWriter.raw` then holds what Slack shows,
    and `finish()` still shows notes and controls, on the same message."""


class AnswerWriter:
    """Writes one streamed answer into one or more Slack messages in a thread."""

    def __init__(
        self,
        writers: Writers,
        team_id: str,
        channel: str,
        thread_ts: str,
        recipient_user_id: str,
        answer_id: int,
        reuse: Sequence[str] = (),
    ) -> None:
        self._writers = writers
        self.api = writers.api
        self.team_id = team_id
        self.channel = channel
        self.thread_ts = thread_ts
        self.recipient_user_id = recipient_user_id
        self.answer_id = answer_id
        self.clock = writers.clock
        self.min_interval = writers.min_interval
        self.stream_max_age = writers.stream_max_age
        self.limit = MESSAGE_LIMIT
        self.status = THINKING
        self.on_progress: ProgressHook | None = None

        self.raw = ""
        self._reuse = list(reuse)
        self._loading = LoadingState(self.api, team_id, channel, thread_ts, writers.no_status)
        self._parts: list[Part] = []
        self._status_changed = False
        self._notes: Sequence[str] = ()
        self._retry = False
        self._rerun = True
        self._last_flush = 0.0
        self._flushed_len = 0
        self._slot_held: str | None = None  # the method whose slot the loop already holds
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._visible = asyncio.Event()  # the final text is visible in Slack
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._owed = OwedFinal(self.api.pacer(team_id))  # the pacer's count this answer is in

    @property
    def parts(self) -> list[str]:
        return [p.ts for p in self._parts if p.ts]

    @property
    def started(self) -> bool:
        """start() has shown the first sign of life (a loading state or a message)."""
        return self._started

    @property
    def finishing(self) -> bool:
        """finish() was called: the writer task ends on its own."""
        return self._finished.is_set()

    @property
    def _part(self) -> Part:
        return self._parts[-1]

    # what the conversation calls ---------------------------------------------------------------------

    async def start(self, status: str = THINKING, *, shown: str = "") -> None:
        """Show the first sign of life: the loading state (a placeholder message where Slack has none), or
        the earlier answer's first message, re-written in place, with its other messages removed.

        `shown`: the text an interrupted answer had (taken over from a process that died): it stays in the
        first message (or opens one), and the answer goes on from it.
        """
        self.status = status
        self._last_flush = self.clock()
        if shown:  # what an interrupted answer had: the first update shows it, at once
            self.raw = shown
            self._wake.set()
        if self._reuse and shown:
            await self._continue_in_place(self._reuse[0], self._reuse[1:])
        elif self._reuse:
            await self._start_in_place(self._reuse[0], self._reuse[1:])
        # Else today's first sign of life: the loading state, a native stream, or a placeholder. Not for an answer
        # taken over before its first text reached Slack (no message of it recorded): that text opens one.
        elif not shown and not await self._loading.show(status, wait=False):
            if not (self._native() and await self._open_stream(0, False)):
                self._open(await UpdatedMessage.post(self, 0, status))
        self._run_task()

    def set_status(self, status: str) -> None:
        """Text shown while no answer text has arrived (retrying, waiting for the thread's turn)."""
        self.status = status
        self._status_changed = True
        self._wake.set()

    def append(self, text: str) -> None:
        """More of the answer. Raises the writer's own failure (`AnswerStopped` once a person stopped the
        answer in Slack), so the model stream stops at once."""
        self._raise_failure()
        self.raw += text
        self._wake.set()

    async def finish(self, notes: Sequence[str] = (), *, retry: bool = False, rerun: bool = True) -> None:
        """Show the complete text, notes under it and the final controls (`retry`: a failure note, so Try
        again instead of Regenerate; no `rerun`: a failure that would come back, so neither), and wait until
        Slack has it; raises what stopped it."""
        assert self._task is not None, "start() first"
        self._notes = notes
        self._retry = retry
        self._rerun = rerun
        self._finished.set()
        self._wake.set()
        task = self._task
        if task.done() and (task.cancelled() or isinstance(task.exception(), AnswerStopped)):
            # Cancelled mid-update, or stopped by a person: a fresh task resends what is missing.
            self._run_task()
        del task  # a failure raised below must not find the old task (and its failure) in this frame
        # Done once the final text is visible; a stream's stop may follow later (Tier 2 can be a minute away).
        visible = asyncio.ensure_future(self._visible.wait())
        try:
            await asyncio.wait({visible, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            visible.cancel()
        if self._failure() is not None:
            self._owed.move(None)
            self._raise_failure()
        if not self._visible.is_set():
            raise asyncio.CancelledError  # the writer task was cancelled before the text showed

    def _final(self) -> bool:
        """The conversation has called finish(): the next sync shows the complete text."""
        return self._finished.is_set()

    def _failure(self) -> BaseException | None:
        """What ended the writer task, if Slack (or a bug, or a person's stop) ended it."""
        task = self._task
        return task.exception() if task is not None and task.done() and not task.cancelled() else None

    def _raise_failure(self) -> None:
        # Never through a local: a frame that holds the exception it raises is a reference cycle.
        if self._failure() is not None:
            raise self._failure()  # type: ignore[misc]

    def release(self) -> None:
        """The answer's turn is over: let go of the answer (the progress hook) and of a writer task that ended.
        A failed task keeps its exception, whose traceback holds this writer's frames: a reference cycle that
        only the cyclic garbage collector would free. A task still closing a stream is kept (and registered)."""
        self.on_progress = None
        if self._task is not None and self._task.done():
            self._task = None

    async def abort(self) -> None:
        """Stop writing without a final update."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # its failure, if any, is retrieved
        self._owed.move(None)
        await self._loading.clear()

    # what a part calls (`bot.slack.parts.Answer`) ----------------------------------------------------

    async def call(self, method: str, *, urgent: bool, **payload: Any) -> dict[str, Any]:
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

    def holds_slot(self, method: str) -> bool:
        return self._slot_held == method

    def hold_slot(self, method: str) -> None:
        self._slot_held = method

    def final_controls(self) -> list[Block]:
        return final_controls(self.answer_id, answered=bool(self.raw.strip()), retry=self._retry, rerun=self._rerun)

    async def posted(self) -> None:
        self._loading.posted()  # Slack clears the loading state when the app posts in the thread
        if self.on_progress is not None:
            await self.on_progress()

    # the loop ----------------------------------------------------------------------------------------

    def _run_task(self) -> None:
        name = f"answer-writer-{self.channel}-{self.thread_ts}"
        self._task = self._writers.run(self._run(), name, self)
        self._started = True

    async def _run(self) -> None:
        try:
            await self._loop()
        except StreamStopped as stop:
            raise self._stopped(stop.stream) from None

    async def _loop(self) -> None:
        while True:
            await self._until_due()
            status_changed, self._status_changed = self._status_changed, False
            final = self._final()
            try:
                final = await self._sync(final, status_changed=status_changed)
            except (RateLimited, SplitSmaller):
                self._wake.set()  # the pacer now knows to wait; the next try sends fresher text
                continue
            except SlackCallError as exc:
                if self._parts and self._part.streamed and exc.error in NATIVE_REFUSALS:
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
        after the last one; the final text, the first text, and a new status while no text is shown, at once."""
        await self._wake.wait()
        self._wake.clear()
        while not (self._final() or (not self.raw and self._status_changed) or (self.raw and not self._parts)):
            gap = self._last_flush + self.min_interval - self.clock()
            if gap <= 0:
                return
            try:
                # On the loop's shared grid: one wake-up ends the waits of every writer due in that tick.
                async with asyncio.timeout(next_tick(asyncio.get_running_loop().time(), gap)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _sync(self, final: bool, *, status_changed: bool = False) -> bool:
        """Bring Slack up to date; True when that was the final text (the answer may finish while it waits)."""
        self._slot_held = None
        shown = False  # a stream's start showed the text: no update is due before news
        if not self._parts:
            if not (final or self.raw):
                if status_changed and not await self._loading.show(self.status):
                    self._open(await UpdatedMessage.post(self, 0, self.status))  # no loading state after all
                return False
            # The first text (or a final note): the answer's first message, whose first call shows it.
            if self._native() and await self._open_stream(0, False, self._text(final), final=final):
                shown = isinstance(self._part, StreamedMessage) and bool(self._part.markdown)
            else:
                self._open(UpdatedMessage(self, "", 0))
        part = self._part
        if status_changed and not final and not self.raw:
            if isinstance(part, StreamedMessage) and not part.markdown:
                # A stream cannot show a passing status (its text is append-only): a placeholder can.
                await self._leave_stream("status")
                return False
            if self._loading.shown:
                await self._loading.show(self.status)  # re-writing in place: the placeholder says it too
        if not final and part.ts and not shown:
            # The slot first, then the text: the update carries the newest text, and an answer that
            # finishes meanwhile leaves the queue for the final path, which may choose a cheaper route.
            held = await self.api.pacer(self.team_id).intermediate_slot(
                part.method, priority=self._priority, until=self._finished
            )
            self._slot_held = part.method if held else None
            final = self._final()
        text = self._text(final)
        # Freeze every message that no longer fits, then continue in a new one of the same kind.
        while cut := self._part.cut(text[self._part.start :]):
            part = self._part
            head = text[part.start : part.start + cut[0]]
            await part.close(head)
            start, opens_in_code = part.start + cut[1], part.next_opens_in_code(head)
            if not (part.streamed and await self._open_stream(start, opens_in_code, text[start:], final=final)):
                self._open(UpdatedMessage(self, "", start, opens_in_code))
        if self.on_progress is not None:
            await self.on_progress()  # stored before it is shown: a crash never leaves Slack ahead of the store
        await self._part.show(text[self._part.start :], final=final)
        self._last_flush = self.clock()
        self._flushed_len = len(self.raw)
        if self.raw and not final:
            await self._loading.clear()  # re-written in place: no post in the thread clears it
        if final:
            self._visible.set()
            try:
                await self._loading.clear()
                await self._part.end()
            finally:
                self._owed.move(None)
        return final

    def _text(self, final: bool) -> str:
        return with_notes(self.raw, self._notes) if final else self.raw

    def _priority(self) -> float:
        return update_priority(waited=self.clock() - self._last_flush, unseen_chars=len(self.raw) - self._flushed_len)

    def _native(self) -> bool:
        return bool(self.recipient_user_id) and self._writers.wants_native(self.team_id, self.channel)

    def _open(self, part: Part, *, posted: bool = True) -> None:
        self._parts.append(part)
        self._owed.move(part.count)
        if posted and part.ts:
            self._loading.posted()

    async def _open_stream(self, start: int, opens_in_code: bool, rest: str = "", *, final: bool = False) -> bool:
        """Open a native stream for the text from `start`. Its start shows what it can of `rest` (that text),
        stored first: a crash never leaves Slack ahead of the store."""
        first = StreamedMessage.first_markdown(rest, opens_in_code, final=final)
        if first and self.on_progress is not None:
            await self.on_progress()
        opened = await StreamedMessage.open(self, start, opens_in_code, first)
        if isinstance(opened, str):
            self._writers.refused(self.team_id, self.channel, opened)
            return False
        self._open(opened)
        return True

    async def _start_in_place(self, first: str, others: Sequence[str]) -> None:
        """Re-write an earlier answer: its first message shows the status and a Stop button until the new
        text arrives (a stream cannot start inside an existing message), its other messages go."""
        shown = await self._loading.show(self.status, wait=False)
        try:
            self._open(await UpdatedMessage.reopen(self, first), posted=False)
        except SlackCallError as exc:
            if exc.transient:
                raise
            log.info("cannot re-write message %s in %s (%s); answering anew", first, self.channel, exc.error)
            if not shown:
                self._open(await UpdatedMessage.post(self, 0, self.status))
        for ts in others:
            await self.api.delete(self.team_id, self.channel, ts)

    async def _continue_in_place(self, first: str, others: Sequence[str]) -> None:
        """Go on with an interrupted answer: its first message gets the text so far at the next update (at
        once), cut into messages anew; its other messages go, since where they were cut is not known."""
        self._open(UpdatedMessage(self, first, 0), posted=False)
        self._last_flush = self.clock() - self.min_interval
        for ts in others:
            await self.api.delete(self.team_id, self.channel, ts)

    async def _leave_stream(self, why: str) -> None:
        """Continue the answer with chat.update from the first character the stream does not show.

        Streams append whole words, so that character starts a word: nothing is lost, doubled or split.
        """
        stream = self._part
        assert isinstance(stream, StreamedMessage)
        log.info("native stream in %s ends (%s); continuing with chat.update", self.channel, why)
        self._writers.refused(self.team_id, self.channel, why)
        if why != "message_not_in_streaming_state":
            await stream.stop()  # Slack refuses chat.update and chat.delete on a message still streaming
        if not stream.markdown and await self.api.delete(self.team_id, self.channel, stream.ts):
            self._parts.pop()  # an empty stream: the placeholder replaces it
        shown = self._text(self._final())[stream.start : stream.start + stream.sent]
        start, opens_in_code = stream.start + stream.sent, stream.next_opens_in_code(shown)
        if self.raw:
            self._open(UpdatedMessage(self, "", start, opens_in_code))  # its first text is posted
        else:
            self._open(await UpdatedMessage.post(self, start, self.status, opens_in_code))

    def _stopped(self, stream: StreamedMessage) -> AnswerStopped:
        """A person stopped `stream` in Slack: the answer ends with what Slack shows. A later finish() shows
        its notes and controls on the same message, with chat.update."""
        log.info("a person stopped the answer in %s (message %s)", self.channel, stream.ts)
        self.raw = self.raw[: stream.start + stream.sent]
        self._flushed_len = len(self.raw)
        self._parts[self._parts.index(stream)] = StoppedStream(self, stream)
        self._owed.move(None)  # no stop owed, and the final update is urgent
        return AnswerStopped(f"stopped in Slack: {self.channel} {stream.ts}")
