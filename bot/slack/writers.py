"""Writing one streamed answer into Slack: one writer task per answer, one loop for every way of writing.

The task does all of the answer's Slack I/O, so updates never race or arrive out of order, and each update
carries the newest text (a 429 or a passing failure is answered with a fresher update, never a stale retry).
An answer spans one or more Slack messages (`bot.slack.parts`): chat.update messages or native streams. The
loop owns what they share: waking, the final text and its notes, cutting long answers into messages,
falling back from a stream that Slack refuses, surfacing failures, and the pacer's bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from bot.core.pacing import update_priority
from bot.core.splitting import MESSAGE_LIMIT, STREAM_MAX_AGE
from bot.slack.api import RateLimited, SlackApi, SlackCallError
from bot.slack.pacer import Clock
from bot.slack.parts import NATIVE_REFUSALS, Part, SplitSmaller, StreamedMessage, UpdatedMessage

log = logging.getLogger(__name__)

THINKING = "_Thinking…_"
# An answer's intermediate updates are at least this far apart; the budget may space them further.
MIN_UPDATE_INTERVAL = 1.0
# Refusals that are about the channel (remembered: chat.update there from now on), not about one stream.
CHANNEL_REFUSALS = frozenset({"channel_type_not_supported", "feature_not_enabled", "missing_scope", "unknown_method"})

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


class Writers:
    """Makes each answer's writer, and remembers the channels where Slack refused native streaming."""

    REFUSED_CAP = 10_000  # channels remembered; the oldest are forgotten (and tried again) first

    def __init__(
        self,
        api: SlackApi,
        *,
        mode: str = "auto",
        clock: Clock = time.monotonic,
        min_interval: float = MIN_UPDATE_INTERVAL,
        stream_max_age: float | None = None,
    ) -> None:
        self.api = api
        self.mode = mode
        self.clock = clock
        self.min_interval = min_interval
        # Read when the factory is made (not when this module loads), so tests can lower it.
        self.stream_max_age = STREAM_MAX_AGE if stream_max_age is None else stream_max_age
        self._refused: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A writer task, kept until it ends: it may outlive its answer's turn to stop a stream."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self, grace: float) -> None:
        """At shutdown: give the writers still closing streams `grace` seconds, then cancel them."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

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
        if error not in CHANNEL_REFUSALS:
            return
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
        self.stream_max_age = writers.stream_max_age
        self.limit = MESSAGE_LIMIT
        self.status = THINKING
        self.on_progress: ProgressHook | None = None

        self.raw = ""
        self._parts: list[Part] = []
        self._status_changed = False
        self._notes: Sequence[str] = ()
        self._last_flush = 0.0
        self._flushed_len = 0
        self._slot_held: str | None = None  # the method whose slot the loop already holds
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._visible = asyncio.Event()  # the final text is visible in Slack
        self._task: asyncio.Task[None] | None = None
        self._registered: str | None = None  # which of the pacer's counts this answer is in

    @property
    def parts(self) -> list[str]:
        return [p.ts for p in self._parts]

    @property
    def _part(self) -> Part:
        return self._parts[-1]

    # what the conversation calls ---------------------------------------------------------------------

    async def start(self, status: str = THINKING) -> None:
        """Show the first sign of life (a native stream, else a placeholder) and start the writer task.

        The way of writing is chosen here, when the answer's turn has come, not when it was queued.
        """
        self.status = status
        native = bool(self.recipient_user_id) and self._writers.wants_native(self.team_id, self.channel)
        if not (native and await self._open_stream(0, False)):
            self._open(await UpdatedMessage.post(self, 0, status))
        self._last_flush = self.clock()
        self._task = self._writers.run(self._run(), name=f"answer-writer-{self.channel}-{self._part.ts}")

    def set_status(self, status: str) -> None:
        """Text shown while no answer text has arrived (retrying, waiting for the thread's turn)."""
        self.status = status
        self._status_changed = True
        self._wake.set()

    def append(self, text: str) -> None:
        """More of the answer. Raises the writer's own failure, so the model stream stops at once."""
        if (error := self._failure()) is not None:
            raise error
        self.raw += text
        self._wake.set()

    async def finish(self, notes: Sequence[str] = ()) -> None:
        """Show the complete text (and notes under it) and wait until Slack has it; raises what stopped it."""
        assert self._task is not None, "start() first"
        self._notes = notes
        self._finished.set()
        self._wake.set()
        if self._task.done() and self._task.cancelled():
            # The last writer task was cancelled mid-update: a fresh one resends what is missing.
            self._task = self._writers.run(self._run(), name=self._task.get_name())
        # Done once the final text is visible; a stream's stop may follow later (Tier 2 can be a minute away).
        visible = asyncio.ensure_future(self._visible.wait())
        try:
            await asyncio.wait({visible, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            visible.cancel()
        if (error := self._failure()) is not None:
            self._register(None)
            raise error
        if not self._visible.is_set():
            raise asyncio.CancelledError  # the writer task was cancelled before the text showed

    def _final(self) -> bool:
        """The conversation has called finish(): the next sync shows the complete text."""
        return self._finished.is_set()

    def _failure(self) -> BaseException | None:
        """What ended the writer task, if Slack (or a bug) ended it."""
        task = self._task
        return task.exception() if task is not None and task.done() and not task.cancelled() else None

    async def abort(self) -> None:
        """Stop writing without a final update."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # its failure, if any, is retrieved
        self._register(None)

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

    # the loop ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
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
        while not (self._final() or (self._status_changed and not self.raw)):
            gap = self._last_flush + self.min_interval - self.clock()
            if gap <= 0:
                return
            try:
                async with asyncio.timeout(gap):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _sync(self, final: bool, *, status_changed: bool = False) -> bool:
        """Bring Slack up to date; True when that was the final text (the answer may finish while it waits)."""
        self._slot_held = None
        part = self._part
        if status_changed and not final and not self.raw and isinstance(part, StreamedMessage) and not part.markdown:
            # A stream cannot show a passing status (its text is append-only): a placeholder can.
            await self._leave_stream("status")
            return False
        if not final:
            # The slot first, then the text: the update carries the newest text, and an answer that
            # finishes meanwhile leaves the queue for the final path, which may choose a cheaper route.
            held = await self.api.pacer(self.team_id).intermediate_slot(
                self._part.method, priority=self._priority, until=self._finished
            )
            self._slot_held = self._part.method if held else None
            final = self._final()
        text = self._text(final)
        # Freeze every message that no longer fits, then continue in a new one of the same kind.
        while cut := self._part.cut(text[self._part.start :]):
            part = self._part
            head = text[part.start : part.start + cut[0]]
            await part.close(head)
            if not (part.streamed and await self._open_stream(part.start + cut[1], part.next_opens_in_code(head))):
                self._open(await UpdatedMessage.post(self, part.start + cut[1], "…", part.next_opens_in_code(head)))
        if self.on_progress is not None:
            await self.on_progress()  # stored before it is shown: a crash never leaves Slack ahead of the store
        await self._part.show(text[self._part.start :], final=final)
        self._last_flush = self.clock()
        self._flushed_len = len(self.raw)
        if final:
            self._visible.set()
            try:
                await self._part.end()
            finally:
                self._register(None)
        return final

    def _text(self, final: bool) -> str:
        return with_notes(self.raw, self._notes) if final else self.raw

    def _priority(self) -> float:
        return update_priority(waited=self.clock() - self._last_flush, unseen_chars=len(self.raw) - self._flushed_len)

    def _open(self, part: Part) -> None:
        self._parts.append(part)
        self._register(part.count)

    async def _open_stream(self, start: int, opens_in_code: bool) -> bool:
        opened = await StreamedMessage.open(self, start, opens_in_code)
        if isinstance(opened, str):
            self._writers.refused(self.team_id, self.channel, opened)
            return False
        self._open(opened)
        return True

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
        body = self.status if not self.raw else "…"
        self._open(await UpdatedMessage.post(self, stream.start + stream.sent, body, stream.next_opens_in_code(shown)))

    def _register(self, count: str | None) -> None:
        """Keep the pacer's counts of answers owed a final call (one count per kind of message) up to date."""
        if count == self._registered:
            return
        pacer = self.api.pacer(self.team_id)
        if self._registered is not None:
            setattr(pacer, self._registered, getattr(pacer, self._registered) - 1)
        if count is not None:
            setattr(pacer, count, getattr(pacer, count) + 1)
        self._registered = count
