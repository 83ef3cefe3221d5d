"""Who calls Slack next, for one workspace: the first sign of life and final texts first, then the answer
that has waited longest with the most new text, each call within `CallBudget`'s rate windows.

`CallBudget` (in `bot.core.pacing`, pure) says *when* a call may go; the pacer decides *who* goes, and keeps
slots free for the final text of every answer in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.pacing import CallBudget, method_of

log = logging.getLogger(__name__)

Clock = Callable[[], float]


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
        self.native_starting = 0  # native streams whose chat.startStream has not returned yet

    def now(self) -> float:
        return self._clock()

    def waiting(self) -> int:
        """Calls queued for a slot, all methods together."""
        return sum(len(queue) for queue in self._waiters.values())

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
            if not queue and self._waiters.get(key) is queue:
                # An idle key (a channel's postMessage, say) is forgotten, so keys do not pile up.
                del self._waiters[key]
                del self._changed[key]
            async with changed:
                changed.notify_all()

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

    def rate_limited(self, key: str, retry_after: float) -> None:
        log.warning("Slack rate-limited %s; pausing it for %.1fs", key, retry_after)
        self.budget.rate_limited(key, self._clock(), retry_after)
