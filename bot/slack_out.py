"""Slack out: posting and updating answers within the workspace's rate budget.

`Pacer` hands out call slots for one workspace: the first sign of life and final texts go first, then the
answer that has waited longest with the most new text. `AnswerWriter` owns one answer's Slack messages: one
task per answer does all of its Slack I/O, so updates never race or arrive out of order, and each update
carries the latest text (a 429 is answered with a fresher update, never a stale retry).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.pacing import REPOST_AFTER, CallBudget, cheaper_to_repost, method_of, update_priority
from bot.core.retry import parse_retry_after
from bot.core.splitting import MESSAGE_LIMIT, render_part, split_head

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class RateLimited(Exception):
    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"{key} rate limited for {retry_after:g}s")
        self.retry_after = retry_after


class _SplitSmaller(Exception):
    """Slack refused a part as too long: re-split the answer with a smaller limit."""


class SlackCallError(Exception):
    """Slack answered `ok: false`; `error` is Slack's code (`not_in_channel`, `msg_too_long`, ...)."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error


@dataclass
class _Waiter:
    urgent: bool
    priority: Callable[[], float]
    since: float

    def rank(self) -> tuple[int, float, float]:
        return (0 if self.urgent else 1, -self.priority(), self.since)


class Pacer:
    """Hands out Slack call slots for one workspace, by priority, within `CallBudget`."""

    def __init__(self, budget: CallBudget | None = None, clock: Clock = time.monotonic) -> None:
        self.budget = budget or CallBudget()
        self._clock = clock
        self._waiters: dict[str, list[_Waiter]] = {}
        # One condition per key: a slot freed on one method wakes only that method's waiters.
        self._changed: dict[str, asyncio.Condition] = {}
        self.answers_in_flight = 0  # chat.update answers, each owed a final update
        self.native_in_flight = 0  # native streams, each owed a chat.stopStream
        self.native_starting = 0  # native streams chosen whose chat.startStream has not returned yet

    def native_has_room(self) -> bool:
        """Whether a new native stream can start now and still be stopped within the Tier 2 budget."""
        now = self._clock()
        starts_free = self.budget.wait_time("chat.startStream", now, reserve=self.native_starting) <= 0
        stops = self.budget.limit("chat.stopStream").calls
        return starts_free and self.native_in_flight + self.native_starting < stops

    def _reserve(self, key: str, waiter: _Waiter) -> int:
        """Slots of the window that intermediate updates leave free: one per answer owed a final text."""
        if waiter.urgent:
            return 0
        owed = {"chat.update": self.answers_in_flight, "chat.appendStream": self.native_in_flight}
        return min(owed.get(method_of(key), 0), self.budget.limit(key).calls // 2)

    async def acquire(self, key: str, *, urgent: bool, priority: Callable[[], float] = lambda: 0.0) -> None:
        """Wait for a slot on `key`; urgent waiters first, then by `priority` (highest first)."""
        waiter = _Waiter(urgent, priority, self._clock())
        queue = self._waiters.setdefault(key, [])
        queue.append(waiter)
        changed = self._changed.setdefault(key, asyncio.Condition())
        try:
            async with changed:
                changed.notify_all()
                while True:
                    now = self._clock()
                    delay = self.budget.wait_time(key, now, reserve=self._reserve(key, waiter))
                    if delay <= 0 and min(queue, key=_Waiter.rank) is waiter:
                        self.budget.record(key, now)
                        return
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                    # arrives as the condition is notified, and a cancelled waiter would then take a slot.
                    try:
                        async with asyncio.timeout(delay if delay > 0 else None):
                            await changed.wait()
                    except TimeoutError:
                        pass
        finally:
            queue.remove(waiter)
            async with changed:
                changed.notify_all()

    async def slot_within(self, key: str, *, seconds: float) -> bool:
        """An urgent slot if one comes within `seconds`; False leaves the queue (the caller may go another way)."""
        try:
            await asyncio.wait_for(self.acquire(key, urgent=True), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def intermediate_slot(self, key: str, *, priority: Callable[[], float], until: asyncio.Event) -> bool:
        """A slot for an intermediate update, unless `until` is set first (the answer finished: its final
        text takes another path). True when the slot is held."""
        slot = asyncio.ensure_future(self.acquire(key, urgent=False, priority=priority))
        finished = asyncio.ensure_future(until.wait())
        await asyncio.wait({slot, finished}, return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        if not slot.done():
            slot.cancel()
        await asyncio.gather(slot, finished, return_exceptions=True)
        return not slot.cancelled()

    def rate_limited(self, key: str, retry_after: float) -> None:
        log.warning("Slack rate-limited %s; pausing it for %.1fs", key, retry_after)
        self.budget.rate_limited(key, self._clock(), retry_after)


class SlackOut:
    """Slack Web API calls, paced per workspace; errors become `RateLimited` or `SlackCallError`."""

    def __init__(self, client: AsyncWebClient, clock: Clock = time.monotonic) -> None:
        self.client = client
        self._clock = clock
        self._pacers: dict[str, Pacer] = {}
        self._native_refused: set[tuple[str, str]] = set()

    def pacer(self, team_id: str) -> Pacer:
        if team_id not in self._pacers:
            self._pacers[team_id] = Pacer(clock=self._clock)
        return self._pacers[team_id]

    def native_refused(self, team_id: str, channel: str, error: str) -> None:
        log.info("Slack refused native streaming in %s (%s); using chat.update there", channel, error)
        self._native_refused.add((team_id, channel))

    def writer(
        self, team_id: str, channel: str, thread_ts: str, *, recipient_user_id: str, mode: str = "auto"
    ) -> Writer:
        """The cheapest honest way to write one answer: native streaming where Slack allows it and its Tier 2
        budget has room for the stream's start and stop, else chat.update."""
        native = mode == "native" or (
            mode == "auto" and (team_id, channel) not in self._native_refused and self.pacer(team_id).native_has_room()
        )
        if native and recipient_user_id:
            return NativeWriter(self, team_id, channel, thread_ts, recipient_user_id)
        return AnswerWriter(self, team_id, channel, thread_ts)

    async def call(
        self,
        team_id: str,
        method: str,
        *,
        scope: str | None = None,
        urgent: bool = True,
        priority: Callable[[], float] = lambda: 0.0,
        retry_rate_limited: bool = True,
        slot_held: bool = False,
        **payload: Any,
    ) -> dict[str, Any]:
        """One API call. With `retry_rate_limited` a 429 waits out Retry-After and sends the same payload.

        `slot_held`: the caller already acquired this call's slot from the pacer.
        """
        key = f"{method}#{scope}" if scope else method
        pacer = self.pacer(team_id)
        while True:
            if not slot_held:
                await pacer.acquire(key, urgent=urgent, priority=priority)
            slot_held = False
            try:
                response = await self.client.api_call(method, json=payload)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                if exc.response.status_code == 429:
                    retry_after = parse_retry_after(exc.response.headers.get("Retry-After")) or 1.0
                    pacer.rate_limited(key, retry_after)
                    if retry_rate_limited:
                        continue
                    raise RateLimited(key, retry_after) from None
                error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
                raise SlackCallError(method, str(error or f"HTTP {exc.response.status_code}")) from None

    async def post(self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None) -> str:
        data = await self.call(
            team_id,
            "chat.postMessage",
            scope=channel,
            channel=channel,
            thread_ts=thread_ts,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(data["ts"])

    async def update(self, team_id: str, channel: str, ts: str, text: str) -> None:
        await self.call(team_id, "chat.update", channel=channel, ts=ts, text=text)

    async def delete(self, team_id: str, channel: str, ts: str) -> bool:
        """Remove one of the bot's messages; False (logged) when Slack would not."""
        try:
            await self.call(team_id, "chat.delete", channel=channel, ts=ts)
        except SlackCallError as exc:
            log.warning("could not delete message %s in %s: %s", ts, channel, exc.error)
            return False
        return True

    async def ephemeral(self, team_id: str, channel: str, user: str, text: str, thread_ts: str | None = None) -> bool:
        """A private note; False when Slack would not take it (the user is told nothing worse)."""
        try:
            await self.call(team_id, "chat.postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackCallError as exc:
            log.warning("could not send a private note to %s in %s: %s", user, channel, exc.error)
            return False
        return True


async def _until_due(
    wake: asyncio.Event, *, due_at: Callable[[], float], clock: Clock, at_once: Callable[[], bool]
) -> None:
    """Wait for news on `wake`, then until an update is due: intermediate updates no sooner than `due_at()`,
    news that `at_once()` says cannot wait (the final text, a new status) immediately."""
    await wake.wait()
    wake.clear()
    while not at_once():
        gap = due_at() - clock()
        if gap <= 0:
            return
        try:
            async with asyncio.timeout(gap):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()


THINKING = "_Thinking…_"
CURSOR = " ▍"
# An answer's intermediate updates are at least this far apart; the budget may space them further.
MIN_UPDATE_INTERVAL = 1.0

ProgressHook = Callable[[], Awaitable[None]]


def with_notes(text: str, notes: Sequence[str]) -> str:
    """An answer followed by its notes (interrupted, cut short...), each an italic warning line."""
    return "\n\n".join([text] * bool(text) + [f"_⚠️ {note}_" for note in notes])


@dataclass
class _Message:
    ts: str
    shown: str


@dataclass
class AnswerWriter:
    """Writes one streamed answer into one or more Slack messages in a thread."""

    out: SlackOut
    team_id: str
    channel: str
    thread_ts: str
    on_progress: ProgressHook | None = None
    limit: int = MESSAGE_LIMIT
    min_interval: float = MIN_UPDATE_INTERVAL
    clock: Clock = time.monotonic

    raw: str = ""
    _messages: list[_Message] = field(default_factory=list)
    _offset: int = 0  # start of the raw text that the last message shows
    _opens_in_code: bool = False
    _status: str = THINKING
    _status_changed: bool = False
    _notes: Sequence[str] = ()
    _final: bool = False
    _last_flush: float = 0.0
    _flushed_len: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _registered: bool = False
    _slot_held: bool = False
    _finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def parts(self) -> list[str]:
        return [m.ts for m in self._messages]

    async def start(self, status: str = THINKING) -> None:
        """Post the placeholder (the first sign of life) and start the task that writes updates."""
        self._status = status
        ts = await self.out.post(self.team_id, self.channel, status, thread_ts=self.thread_ts)
        self._messages.append(_Message(ts, status))
        self._last_flush = self.clock()
        self._register(True)
        self._task = asyncio.create_task(self._run(), name=f"answer-writer-{self.channel}-{ts}")

    def set_status(self, status: str) -> None:
        """Text shown while no answer text has arrived (retrying, waiting for the thread's turn)."""
        self._status = status
        self._status_changed = True
        self._wake.set()

    def append(self, text: str) -> None:
        self.raw += text
        self._wake.set()

    async def finish(self, notes: Sequence[str] = ()) -> None:
        """Show the complete text (and notes under it) and wait until Slack has it."""
        self._notes = notes
        self._final = True
        self._finished.set()
        self._wake.set()
        assert self._task is not None, "start() first"
        if self._task.done() and (self._task.cancelled() or self._task.exception() is not None):
            # The last writer task was cancelled or failed mid-update: a fresh one resends what is missing.
            self._task = asyncio.create_task(self._run(), name=self._task.get_name())
        try:
            await self._task
        finally:
            self._register(False)

    async def abort(self) -> None:
        """Stop writing without a final update."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._register(False)

    def _register(self, active: bool) -> None:
        # The pacer keeps one chat.update slot free for the final text of each answer in flight.
        if active != self._registered:
            self._registered = active
            self.out.pacer(self.team_id).answers_in_flight += 1 if active else -1

    # the writer task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await _until_due(
                self._wake,
                due_at=lambda: self._last_flush + self.min_interval,
                clock=self.clock,
                at_once=lambda: self._final or (self._status_changed and not self.raw),
            )
            self._status_changed = False
            final = self._final
            try:
                await self._sync(final)
            except (RateLimited, _SplitSmaller):
                self._wake.set()  # the pacer now knows to wait; the next try sends fresher text
                continue
            if final:
                return

    def _priority(self) -> float:
        return update_priority(waited=self.clock() - self._last_flush, unseen_chars=len(self.raw) - self._flushed_len)

    def _display(self) -> str:
        return with_notes(self.raw, self._notes) if self._final else self.raw

    async def _sync(self, final: bool) -> None:
        if not final:
            # The slot first, then the text: the update carries the newest text, and an answer that
            # finishes meanwhile leaves the queue for the final path, which may choose a cheaper route.
            pacer = self.out.pacer(self.team_id)
            self._slot_held = await pacer.intermediate_slot(
                "chat.update", priority=self._priority, until=self._finished
            )
            final = self._final
        text = self._display()
        # Freeze every part that no longer fits, then continue in a new message.
        while split := split_head(text[self._offset :], limit=self.limit, opens_in_code=self._opens_in_code):
            head, _ = split
            rendered = render_part(head, opens_in_code=self._opens_in_code)
            await self._show(self._messages[-1], rendered.text, urgent=True)
            self._offset += len(head)
            while self._offset < len(text) and text[self._offset] in " \n":
                self._offset += 1  # the separator the cut was made at
            self._opens_in_code = rendered.ends_in_code
            rest = text[self._offset :]
            fits = split_head(rest, limit=self.limit, opens_in_code=self._opens_in_code) is None
            body = render_part(rest, opens_in_code=self._opens_in_code).text if fits and rest else "…"
            ts = await self.out.post(self.team_id, self.channel, body, thread_ts=self.thread_ts)
            self._messages.append(_Message(ts, body))
        body = render_part(text[self._offset :], opens_in_code=self._opens_in_code).text.rstrip() or "…"
        if not final:
            body = body + CURSOR if body != "…" else self._status
        if self.on_progress is not None:
            await self.on_progress()  # stored before it is shown: a crash never leaves Slack ahead of the store
        if final and not await self._final_slot(body):
            await self._repost(body)
        else:
            await self._show(self._messages[-1], body, urgent=final)
        self._last_flush = self.clock()
        self._flushed_len = len(self.raw)

    async def _final_slot(self, body: str) -> bool:
        """Hold a chat.update slot for the final text (True), or decide that reposting is faster (False).

        Reconsidered every REPOST_AFTER seconds: other answers' finals may be queued ahead of this one.
        """
        if self._slot_held or self._messages[-1].shown == body:
            return True
        pacer = self.out.pacer(self.team_id)
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
                self._slot_held = True
                return True
            waited += REPOST_AFTER

    async def _repost(self, body: str) -> None:
        """Post the final part as a new message, then remove the stale one it replaces."""
        stale = self._messages[-1]
        ts = await self.out.post(self.team_id, self.channel, body, thread_ts=self.thread_ts)
        self._messages[-1] = _Message(ts, body)
        if self.on_progress is not None:
            await self.on_progress()  # the store points at the new message before the old one goes
        await self.out.delete(self.team_id, self.channel, stale.ts)

    async def _show(self, message: _Message, text: str, *, urgent: bool) -> None:
        slot_held, self._slot_held = self._slot_held, False
        if message.shown == text:
            return
        while True:
            try:
                await self.out.call(
                    self.team_id,
                    "chat.update",
                    urgent=urgent,
                    priority=self._priority,
                    retry_rate_limited=urgent,
                    slot_held=slot_held,
                    channel=self.channel,
                    ts=message.ts,
                    text=text,
                )
            except SlackCallError as exc:
                if exc.error == "msg_too_long" and self.limit > 500:
                    # Slack's real limit is lower than ours for this text: split smaller and start over.
                    self.limit = int(self.limit * 0.75)
                    log.warning("msg_too_long; splitting answers at %d characters", self.limit)
                    raise _SplitSmaller from None
                raise
            message.shown = text
            return


# Native streaming (chat.startStream / appendStream / stopStream) ---------------------------------------

# One append carries at most this much Markdown (Slack's limit is 12,000 characters a payload).
APPEND_LIMIT = 11_000
# Past this much text a streamed message continues in a new message, as chat.update answers do.
NATIVE_MESSAGE_LIMIT = 30_000
# Errors after which the rest of the answer goes out through chat.update instead.
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
    }
)


@dataclass
class NativeWriter:
    """Writes one answer with Slack's native streaming; hands over to an `AnswerWriter` when Slack refuses.

    Appends are Tier 4 (100 a minute) where chat.update is Tier 3, so streams stay lively under load. The
    final text goes out as an urgent append, which is when people see the whole answer; the Tier 2
    `chat.stopStream` that closes the stream is then sent when the budget allows.
    """

    out: SlackOut
    team_id: str
    channel: str
    thread_ts: str
    recipient_user_id: str
    on_progress: ProgressHook | None = None
    min_interval: float = MIN_UPDATE_INTERVAL
    clock: Clock = time.monotonic

    raw: str = ""
    _ts: str | None = None
    _sent: int = 0  # characters of the displayed text already appended to the stream
    _fallback: AnswerWriter | None = None
    _notes: Sequence[str] = ()
    _final: bool = False
    _pending_status: str | None = None
    _last_flush: float = 0.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _registered: bool = False
    _finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def parts(self) -> list[str]:
        return ([self._ts] if self._ts else []) + (self._fallback.parts if self._fallback else [])

    def __post_init__(self) -> None:
        self.out.pacer(self.team_id).native_starting += 1

    async def start(self, status: str = THINKING) -> None:
        """Start the stream: the streaming message is the first sign of life."""
        pacer = self.out.pacer(self.team_id)
        try:
            data = await self.out.call(
                self.team_id,
                "chat.startStream",
                retry_rate_limited=False,
                channel=self.channel,
                thread_ts=self.thread_ts,
                recipient_user_id=self.recipient_user_id,
                recipient_team_id=self.team_id,
            )
            self._ts = str(data["ts"])
        except RateLimited:
            # Tier 2 is smaller than we thought: a chat.update answer now beats a stream in a minute.
            await self._hand_over(status)
            return
        except SlackCallError as exc:
            if exc.error not in NATIVE_REFUSALS:
                raise
            self.out.native_refused(self.team_id, self.channel, exc.error)
            await self._hand_over(status)
            return
        finally:
            pacer.native_starting -= 1
        self._last_flush = self.clock()
        self._register(True)
        self._task = asyncio.create_task(self._run(), name=f"native-writer-{self.channel}-{self._ts}")

    def set_status(self, status: str) -> None:
        if self._fallback is not None:
            self._fallback.set_status(status)
        elif self._sent == 0:
            # Nothing streamed yet and the stream cannot show a passing status (text is append-only):
            # continue as a chat.update answer, whose placeholder can.
            self._pending_status = status
            self._wake.set()

    def append(self, text: str) -> None:
        self.raw += text
        if self._fallback is not None:
            self._fallback.append(text)
        self._wake.set()

    async def finish(self, notes: Sequence[str] = ()) -> None:
        self._notes = notes
        self._final = True
        self._finished.set()
        if self._task is not None and not self._task.done():
            self._wake.set()
            try:
                await self._task
            finally:
                self._register(False)
        if self._fallback is not None:
            await self._fallback.finish(notes)

    async def abort(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._register(False)
        if self._fallback is not None:
            await self._fallback.abort()

    def _register(self, active: bool) -> None:
        if active != self._registered:
            self._registered = active
            self.out.pacer(self.team_id).native_in_flight += 1 if active else -1

    async def _hand_over(self, status: str) -> None:
        """Continue this answer in a new chat.update message, from the first character not yet streamed."""
        self._fallback = AnswerWriter(
            self.out,
            self.team_id,
            self.channel,
            self.thread_ts,
            on_progress=self.on_progress,
            min_interval=self.min_interval,
            clock=self.clock,
        )
        self._fallback.raw = self.raw[min(self._sent, len(self.raw)) :]
        await self._fallback.start(status)
        if self._fallback.raw:
            self._fallback.append("")  # show what is already there

    def _display(self) -> str:
        return with_notes(self.raw, self._notes) if self._final else self.raw

    async def _run(self) -> None:
        while True:
            await _until_due(
                self._wake,
                due_at=lambda: self._last_flush + self.min_interval,
                clock=self.clock,
                at_once=lambda: self._final or self._pending_status is not None,
            )
            if self._pending_status is not None and self._sent == 0 and not self._final:
                await self._abandon_stream()
                await self._hand_over(self._pending_status)
                return
            final = self._final
            try:
                await self._flush(final)
            except RateLimited:
                self._wake.set()
                continue
            except SlackCallError as exc:
                if exc.error not in NATIVE_REFUSALS:
                    raise
                log.info("native stream in %s refused (%s); continuing with chat.update", self.channel, exc.error)
                self._register(False)
                await self._hand_over(THINKING)  # finish() passes the notes on to the new writer
                return
            if final:
                self._register(False)
                await self._stop()
                return

    async def _flush(self, final: bool) -> None:
        slot_held = False
        if not final:
            # As in AnswerWriter._sync: the slot first, then the newest text.
            pacer = self.out.pacer(self.team_id)
            slot_held = await pacer.intermediate_slot(
                "chat.appendStream", priority=self._priority, until=self._finished
            )
            final = self._final
        text = self._display()
        if self.on_progress is not None:
            await self.on_progress()  # stored before it is shown
        if self._sent >= NATIVE_MESSAGE_LIMIT and len(text) > self._sent:
            raise SlackCallError("chat.appendStream", "msg_too_long")
        while self._sent < len(text):
            chunk = text[self._sent : self._sent + APPEND_LIMIT]
            await self.out.call(
                self.team_id,
                "chat.appendStream",
                urgent=final,
                priority=self._priority,
                retry_rate_limited=final,
                slot_held=slot_held,
                channel=self.channel,
                ts=self._ts,
                markdown_text=chunk,
            )
            slot_held = False
            self._sent += len(chunk)
            if not final:
                break
        self._last_flush = self.clock()

    def _priority(self) -> float:
        return update_priority(waited=self.clock() - self._last_flush, unseen_chars=len(self.raw) - self._sent)

    async def _stop(self) -> None:
        # The whole answer is already visible: closing the stream may wait for Tier 2 budget.
        try:
            await self.out.call(self.team_id, "chat.stopStream", urgent=False, channel=self.channel, ts=self._ts)
        except SlackCallError as exc:
            log.info("could not stop the stream in %s (%s); Slack closes it after a while", self.channel, exc.error)

    async def _abandon_stream(self) -> None:
        """An empty stream replaced by a placeholder: remove it so the thread shows one message."""
        self._register(False)
        assert self._ts is not None
        if await self.out.delete(self.team_id, self.channel, self._ts):
            self._ts = None
        else:
            await self._stop()


Writer = AnswerWriter | NativeWriter
