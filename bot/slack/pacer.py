"""Who calls Slack next, for one workspace: the first sign of life and final texts first, then the answer
that has waited longest with the most new text, each call within `CallBudget`'s rate windows.

`CallBudget` (in `bot.core.pacing`, pure) says *when* a call may go; the pacer decides *who* goes, and keeps
slots free for the final text of every answer in flight.

Several replicas of the bot draw on one workspace's budget, so with a `SharedCalls` (PostgreSQL's
`bot.storage.shared_budget.SharedBudget`) a call the local budget lets go is also asked of the shared one:
one round trip, whose answer (every replica's calls in the window, a pause from any replica's 429, what the
other replicas' answers are owed) replaces what this process knew of the key. Without one (SQLite, a single
process) nothing changes and nothing is asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.core.pacing import CallBudget, SharedWindow, method_of

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# After the shared budget refused a call the local one allowed (they should then agree), the least wait
# before asking again, so a disagreement never turns into a loop of round trips.
REFUSED_WAIT = 0.05


class SharedCalls(Protocol):
    """The rate budget every replica of the bot shares, per workspace and key. Neither method raises: when the
    shared budget cannot answer, `take` returns None and the local budget decides alone."""

    async def take(self, team_id: str, key: str, *, span: float, allowed: int, owed: int) -> SharedWindow | None:
        """Count a call on `key` if its window (calls of the last `span` seconds) holds fewer than `allowed`
        and no 429 pauses it; `owed` is this replica's count of final calls owed on the key."""
        ...

    async def pause(self, team_id: str, key: str, seconds: float) -> None:
        """Pause `key` for every replica (Slack's Retry-After)."""
        ...


@dataclass
class _Waiter:
    urgent: bool
    priority: Callable[[], float]
    since: float
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def rank(self) -> tuple[int, float, float]:
        return (0 if self.urgent else 1, -self.priority(), self.since)


class _Queue:
    """The calls waiting for a slot on one key. Only the one ranked first waits for the slot's time; the
    others sleep until a call joins or leaves makes one of them first. (Waking them all at every change cost
    each slot a wake-up, and a ranking of the whole queue, per waiter.)"""

    def __init__(self) -> None:
        self.waiters: list[_Waiter] = []
        self.asking = asyncio.Lock()  # a shared budget is asked for one slot of the key at a time

    def first(self) -> _Waiter:
        return min(self.waiters, key=_Waiter.rank)

    def wake_first(self) -> None:
        if self.waiters:
            self.first().woken.set()


class Pacer:
    """Hands out Slack call slots for one workspace, by priority, within `CallBudget`."""

    def __init__(
        self,
        budget: CallBudget | None = None,
        clock: Clock = time.monotonic,
        *,
        shared: SharedCalls | None = None,
        team_id: str = "",
    ) -> None:
        self.budget = budget or CallBudget()
        self._clock = clock
        self._shared = shared
        self._team_id = team_id
        # key → (final calls the other replicas' answers are owed on it, when the shared budget said so)
        self._owed_elsewhere: dict[str, tuple[int, float]] = {}
        self._queues: dict[str, _Queue] = {}  # per key: a slot freed on one method concerns only its callers
        self.answers_in_flight = 0  # chat.update answers, each owed a final update
        self.native_in_flight = 0  # native streams, each owed a chat.stopStream
        self.native_starting = 0  # native streams whose chat.startStream has not returned yet

    def now(self) -> float:
        return self._clock()

    def waiting(self) -> int:
        """Calls queued for a slot, all methods together."""
        return sum(len(queue.waiters) for queue in self._queues.values())

    def native_has_room(self) -> bool:
        """Whether a new native stream can start now and still be stopped within the Tier 2 budget."""
        now = self._clock()
        starts_free = self.budget.wait_time("chat.startStream", now, reserve=self.native_starting) <= 0
        stops = self.budget.limit("chat.stopStream").calls
        streams = self.native_in_flight + self.owed_elsewhere("chat.appendStream", now) + self.native_starting
        return starts_free and streams < stops

    def _owed_here(self, key: str) -> int:
        """Final calls this process's answers are owed on `key`: one per answer in flight of its kind."""
        owed = {"chat.update": self.answers_in_flight, "chat.appendStream": self.native_in_flight}
        return owed.get(method_of(key), 0)

    def owed_elsewhere(self, key: str, now: float) -> int:
        """What the other replicas' answers are owed on `key`, as the shared budget last said (for a window)."""
        said = self._owed_elsewhere.get(key)
        if said is None:
            return 0
        owed, heard = said
        if now - heard > self.budget.span(key):
            del self._owed_elsewhere[key]
            return 0
        return owed

    def _reserve(self, key: str, urgent: bool, now: float) -> int:
        """Slots of the window that intermediate updates leave free: one per answer owed a final text, every
        replica's."""
        if urgent:
            return 0
        owed = self._owed_here(key) + self.owed_elsewhere(key, now)
        return min(owed, self.budget.limit(key).calls // 2)

    def take_free(self, key: str, *, urgent: bool) -> bool:
        """Take a slot on `key` if one is free now and nobody waits for it: what `acquire` would decide at
        once, without its queue (most calls find a free slot: this is their whole cost). Never with a shared
        budget, which only a round trip can answer."""
        if self._shared is not None or key in self._queues:
            return False
        now = self._clock()
        if self.budget.wait_time(key, now, reserve=self._reserve(key, urgent, now)) > 0:
            return False
        self.budget.record(key, now)
        return True

    async def acquire(self, key: str, *, urgent: bool, priority: Callable[[], float] = lambda: 0.0) -> None:
        """Wait for a slot on `key`; urgent waiters first, then by `priority` (highest first)."""
        if self.take_free(key, urgent=urgent):
            return
        waiter = _Waiter(urgent, priority, self._clock())
        queue = self._queues.setdefault(key, _Queue())
        queue.waiters.append(waiter)
        try:
            while True:
                waiter.woken.clear()
                first = queue.first()
                now = self._clock()
                delay = self.budget.wait_time(key, now, reserve=self._reserve(key, urgent, now))
                timeout: float | None = delay
                if first is not waiter:
                    first.woken.set()  # a call joined (or a rank moved): the first of the queue looks again
                    timeout = None
                elif delay <= 0:
                    if self._shared is None:
                        self.budget.record(key, now)
                        return
                    if await self._ask_shared(queue, waiter, key):
                        return
                    timeout = REFUSED_WAIT
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives as the waiter is woken, and a cancelled waiter would then take a slot.
                try:
                    async with asyncio.timeout(timeout):
                        await waiter.woken.wait()
                except TimeoutError:
                    pass
        finally:
            queue.waiters.remove(waiter)
            if queue.waiters:
                queue.wake_first()
            elif self._queues.get(key) is queue:
                del self._queues[key]  # an idle key (a channel's postMessage, say) is forgotten

    async def _ask_shared(self, queue: _Queue, waiter: _Waiter, key: str) -> bool:
        """The slot the local budget allows `waiter` (first of its queue), if the shared budget allows it too.
        One round trip per key at a time: a call that became first meanwhile waits for this one's answer."""
        async with queue.asking:
            now = self._clock()
            reserve = self._reserve(key, waiter.urgent, now)
            if queue.first() is not waiter or self.budget.wait_time(key, now, reserve=reserve) > 0:
                return False  # another call took the slot during the wait for the lock
            return await self._take_shared(key, now, reserve)

    async def slot_within(self, key: str, *, seconds: float) -> bool:
        """An urgent slot if one comes within `seconds`; False leaves the queue (the caller may go another way)."""
        try:
            async with asyncio.timeout(seconds):
                await self.acquire(key, urgent=True)
        except TimeoutError:
            return False
        return True

    async def intermediate_slot(self, key: str, *, priority: Callable[[], float], until: asyncio.Event) -> bool:
        """A slot for an intermediate update, unless `until` is set first (the answer finished: its final
        text takes another path). True when the slot is held."""
        if until.is_set():
            return False
        if self.take_free(key, urgent=False):
            return True
        slot = asyncio.ensure_future(self.acquire(key, urgent=False, priority=priority))
        finished = asyncio.ensure_future(until.wait())
        try:
            await asyncio.wait({slot, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also when the caller is cancelled: neither wait may outlive it (the slot would be taken for
            # nobody, and the other wait would never end).
            finished.cancel()
            if not slot.done():
                slot.cancel()
            await asyncio.gather(slot, finished, return_exceptions=True)
        return not slot.cancelled() and slot.exception() is None

    async def _take_shared(self, key: str, now: float, reserve: int) -> bool:
        """Count the call the local budget allows now, if the shared budget allows it too."""
        assert self._shared is not None
        allowed = self.budget.allowed(key, now, reserve=reserve)
        share = await self._shared.take(
            self._team_id, key, span=self.budget.span(key), allowed=allowed, owed=self._owed_here(key)
        )
        heard = self._clock()
        if share is None:  # the shared budget cannot answer (it logged why): the local decision stands
            self.budget.record(key, heard)
            return True
        # Ages mapped from the moment the answer arrived: never earlier than the database's moment, so calls
        # stay in the local window at least as long as in the shared one.
        calls = [heard - age for age in share.ages]
        self.budget.observe(key, heard, calls, paused_until=heard + share.paused_for)
        if share.owed_elsewhere:
            self._owed_elsewhere[key] = (share.owed_elsewhere, heard)
        else:
            self._owed_elsewhere.pop(key, None)  # keys scoped per channel must not pile up
        return share.granted

    async def rate_limited(self, key: str, retry_after: float) -> None:
        """Slack said 429: pause the key here, and for every replica when the budget is shared."""
        log.warning("Slack rate-limited %s; pausing it for %.1fs", key, retry_after)
        self.budget.rate_limited(key, self._clock(), retry_after)
        if self._shared is not None:
            await self._shared.pause(self._team_id, key, retry_after)


class OwedFinal:
    """One answer's place in its pacer's counts of answers owed a final call: `answers_in_flight` or
    `native_in_flight`, by the kind of its last message (`Part.count`), or neither once nothing is owed."""

    def __init__(self, pacer: Pacer) -> None:
        self._pacer = pacer
        self.count: str | None = None

    def move(self, count: str | None) -> None:
        if count == self.count:
            return
        if self.count is not None:
            setattr(self._pacer, self.count, getattr(self._pacer, self.count) - 1)
        if count is not None:
            setattr(self._pacer, count, getattr(self._pacer, count) + 1)
        self.count = count
