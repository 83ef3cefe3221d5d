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

from bot.core.pacing import CallBudget, method_of
from bot.core.retry import parse_retry_after
from bot.core.splitting import MESSAGE_LIMIT, render_part, split_head

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Errors that mean "this channel or message cannot take our text": retrying will not help.
UNDELIVERABLE = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action_thread_locked",
        "message_not_found",
        "cant_update_message",
        "msg_blocks_too_long",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "team_access_not_granted",
        "restricted_action",
        "restricted_action_read_only_channel",
    }
)


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

    @property
    def undeliverable(self) -> bool:
        return self.error in UNDELIVERABLE


@dataclass
class _Waiter:
    urgent: bool
    priority: Callable[[], float]
    since: float

    def rank(self) -> tuple[int, float, float]:
        return (0 if self.urgent else 1, -self.priority(), self.since)


class Pacer:
    """Hands out Slack call slots for one workspace, by priority, within `CallBudget`."""

    # Methods whose window keeps one slot per answer in flight for that answer's final text.
    RESERVED_FOR_FINALS = frozenset({"chat.update"})

    def __init__(self, budget: CallBudget | None = None, clock: Clock = time.monotonic) -> None:
        self.budget = budget or CallBudget()
        self._clock = clock
        self._waiters: dict[str, list[_Waiter]] = {}
        self._changed = asyncio.Condition()
        self.answers_in_flight = 0

    def _reserve(self, key: str, waiter: _Waiter) -> int:
        if waiter.urgent or method_of(key) not in self.RESERVED_FOR_FINALS:
            return 0
        return min(self.answers_in_flight, self.budget.limit(key).calls // 2)

    async def acquire(self, key: str, *, urgent: bool, priority: Callable[[], float] = lambda: 0.0) -> None:
        waiter = _Waiter(urgent, priority, self._clock())
        queue = self._waiters.setdefault(key, [])
        queue.append(waiter)
        try:
            async with self._changed:
                self._changed.notify_all()
                while True:
                    now = self._clock()
                    delay = self.budget.wait_time(key, now, reserve=self._reserve(key, waiter))
                    if delay <= 0 and min(queue, key=_Waiter.rank) is waiter:
                        self.budget.record(key, now)
                        return
                    try:
                        await asyncio.wait_for(self._changed.wait(), timeout=delay if delay > 0 else None)
                    except TimeoutError:
                        pass
        finally:
            queue.remove(waiter)
            async with self._changed:
                self._changed.notify_all()

    def rate_limited(self, key: str, retry_after: float) -> None:
        log.warning("Slack rate-limited %s; pausing it for %.1fs", key, retry_after)
        self.budget.rate_limited(key, self._clock(), retry_after)


class SlackOut:
    """Slack Web API calls, paced per workspace; errors become `RateLimited` or `SlackCallError`."""

    def __init__(self, client: AsyncWebClient, clock: Clock = time.monotonic) -> None:
        self.client = client
        self._clock = clock
        self._pacers: dict[str, Pacer] = {}

    def pacer(self, team_id: str) -> Pacer:
        if team_id not in self._pacers:
            self._pacers[team_id] = Pacer(clock=self._clock)
        return self._pacers[team_id]

    async def call(
        self,
        team_id: str,
        method: str,
        *,
        scope: str | None = None,
        urgent: bool = True,
        priority: Callable[[], float] = lambda: 0.0,
        retry_rate_limited: bool = True,
        **payload: Any,
    ) -> dict[str, Any]:
        """One API call. With `retry_rate_limited` a 429 waits out Retry-After and sends the same payload."""
        key = f"{method}#{scope}" if scope else method
        pacer = self.pacer(team_id)
        while True:
            await pacer.acquire(key, urgent=urgent, priority=priority)
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

    async def ephemeral(self, team_id: str, channel: str, user: str, text: str, thread_ts: str | None = None) -> bool:
        """A private note; False when Slack would not take it (the user is told nothing worse)."""
        try:
            await self.call(team_id, "chat.postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackCallError as exc:
            log.warning("could not send a private note to %s in %s: %s", user, channel, exc.error)
            return False
        return True


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
    _notes: Sequence[str] = ()
    _final: bool = False
    _last_flush: float = 0.0
    _flushed_len: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _registered: bool = False

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
        self._wake.set()

    def append(self, text: str) -> None:
        self.raw += text
        self._wake.set()

    async def finish(self, notes: Sequence[str] = ()) -> None:
        """Show the complete text (and notes under it) and wait until Slack has it."""
        self._notes = notes
        self._final = True
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
            await self._wake.wait()
            self._wake.clear()
            if not self._final:
                gap = self._last_flush + self.min_interval - self.clock()
                if gap > 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=gap)
                    except TimeoutError:
                        pass
                    self._wake.set()  # re-evaluate with whatever arrived meanwhile
                    continue
            final = self._final
            try:
                await self._sync(final)
            except (RateLimited, _SplitSmaller):
                self._wake.set()  # the pacer now knows to wait; the next try sends fresher text
                continue
            if final:
                return

    def _priority(self) -> float:
        # Stale answers with much unseen text first; a few seconds of waiting equals a paragraph.
        return (self.clock() - self._last_flush) + (len(self.raw) - self._flushed_len) / 200

    def _display(self) -> str:
        return with_notes(self.raw, self._notes) if self._final else self.raw

    async def _sync(self, final: bool) -> None:
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
        body = render_part(text[self._offset :], opens_in_code=self._opens_in_code).text.rstrip()
        if not final:
            body = body + CURSOR if body else self._status
        await self._show(self._messages[-1], body or "…", urgent=final)
        self._last_flush = self.clock()
        self._flushed_len = len(self.raw)
        if self.on_progress is not None:
            await self.on_progress()

    async def _show(self, message: _Message, text: str, *, urgent: bool) -> None:
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
