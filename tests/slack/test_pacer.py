"""The pacer: its queue (who goes next, and waits that end without leaving anything behind), and its counts
of answers owed a final call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.core.pacing import EDGE_MARGIN, CallBudget, Limit
from bot.slack.pacer import OwedFinal, Pacer


async def test_a_cancelled_intermediate_wait_leaves_no_task_and_takes_no_slot() -> None:
    pacer = Pacer(CallBudget({"chat.update": Limit(1, 0.3)}))
    await pacer.acquire("chat.update", urgent=True)  # the window is full for 0.3 s
    before = len(asyncio.all_tasks())
    waiting = asyncio.create_task(
        pacer.intermediate_slot("chat.update", priority=lambda: 1.0, until=asyncio.Event())
    )
    await asyncio.sleep(0.05)
    waiting.cancel()  # the answer was aborted while its update waited for a slot
    await asyncio.gather(waiting, return_exceptions=True)
    await asyncio.sleep(0.3 + EDGE_MARGIN + 0.15)  # past the window: an orphaned wait would have taken the slot
    assert len(asyncio.all_tasks()) == before
    assert pacer.waiting() == 0
    assert pacer.budget.used("chat.update", asyncio.get_running_loop().time()) == 0


async def test_urgent_calls_go_before_intermediate_ones_and_priority_orders_the_rest() -> None:
    pacer = Pacer(CallBudget({"chat.update": Limit(1, 0.1)}))
    await pacer.acquire("chat.update", urgent=True)
    order: list[str] = []

    async def take(name: str, *, urgent: bool, priority: float) -> None:
        await pacer.acquire("chat.update", urgent=urgent, priority=lambda: priority)
        order.append(name)

    tasks = [
        asyncio.create_task(take("low", urgent=False, priority=1.0)),
        asyncio.create_task(take("high", urgent=False, priority=5.0)),
        asyncio.create_task(take("final", urgent=True, priority=0.0)),
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), 3)
    assert order == ["final", "high", "low"]


async def test_idle_keys_are_forgotten() -> None:
    pacer = Pacer()
    for channel in range(100):
        await pacer.acquire(f"chat.postMessage#C{channel}", urgent=True)
    assert pacer.waiting() == 0
    assert not pacer._queues


async def test_queued_calls_are_woken_one_at_a_time_not_all_at_every_change() -> None:
    """Each call that joins or leaves the queue makes the pacer look at the queue's ranks a few times, not once
    per waiter (waking every waiter at every change ranked the whole queue once per waiter: calls³ in all)."""
    pacer = Pacer(CallBudget({"chat.update": Limit(10, 0.01)}))
    for _ in range(10):
        await pacer.acquire("chat.update", urgent=True)  # the window is full: the rest queue
    calls, looks = 30, 0
    order: list[int] = []

    def priority_of(i: int) -> Callable[[], float]:
        def priority() -> float:
            nonlocal looks
            looks += 1
            return float(i)

        return priority

    async def take(i: int) -> None:
        await pacer.acquire("chat.update", urgent=False, priority=priority_of(i))
        order.append(i)

    await asyncio.wait_for(asyncio.gather(*(take(i) for i in range(calls))), 10)
    assert order == sorted(order, reverse=True) and len(order) == calls  # highest priority first
    assert looks < 4 * calls * calls
    assert pacer.waiting() == 0


def test_an_answer_is_in_one_of_the_pacers_counts_of_owed_finals_at_a_time() -> None:
    pacer = Pacer(CallBudget({}))
    first, second = OwedFinal(pacer), OwedFinal(pacer)
    first.move("native_in_flight")
    second.move("answers_in_flight")
    second.move("answers_in_flight")  # its next message of the same kind: still one answer
    assert (pacer.native_in_flight, pacer.answers_in_flight) == (1, 1)
    first.move("answers_in_flight")  # a stream Slack refused: the answer goes on with chat.update
    assert (pacer.native_in_flight, pacer.answers_in_flight) == (0, 2)
    first.move(None)
    second.move(None)
    second.move(None)  # finished, then aborted: nothing owed, counted once
    assert (pacer.native_in_flight, pacer.answers_in_flight) == (0, 0)
