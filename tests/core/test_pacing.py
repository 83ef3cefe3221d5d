from __future__ import annotations

import pytest

from bot.core.pacing import CallBudget, Limit, cheaper_to_repost, update_priority
from bot.core.retry import backoff_delay, parse_retry_after


def test_a_window_is_never_overrun() -> None:
    budget = CallBudget({"chat.update": Limit(5, 60.0)})
    now = 0.0
    made = []
    while now < 180:
        if budget.wait_time("chat.update", now) == 0:
            budget.record("chat.update", now)
            made.append(now)
        now += 0.5
    for t in made:  # any 60 s window holds at most 5 calls
        assert sum(1 for u in made if t <= u < t + 60) <= 5
    assert len(made) == 15


def test_the_reserve_keeps_slots_for_finals() -> None:
    budget = CallBudget({"chat.update": Limit(10, 60.0)})
    for i in range(7):
        budget.record("chat.update", float(i))
    # 7 used + 3 reserved = full: the next non-final call waits for the oldest (t=0) to leave the window
    assert budget.wait_time("chat.update", 7.0, reserve=3) == 53.0
    assert budget.wait_time("chat.update", 7.0) == 0.0  # a final may use the reserve


def test_a_429_pauses_the_key_and_lowers_the_limit() -> None:
    budget = CallBudget({"chat.update": Limit(50, 60.0)})
    for i in range(21):
        budget.record("chat.update", i * 0.1)
    budget.rate_limited("chat.update", 2.1, retry_after=3)
    assert budget.wait_time("chat.update", 2.2) > 2.8
    assert budget.limit("chat.update") == Limit(20, 60.0)
    assert budget.rate_limited_count == 1


def test_scoped_keys_share_their_methods_limit_but_not_its_window() -> None:
    budget = CallBudget({"chat.postMessage": Limit(1, 1.0)})
    budget.record("chat.postMessage#C1", 0.0)
    assert budget.wait_time("chat.postMessage#C1", 0.1) > 0
    assert budget.wait_time("chat.postMessage#C2", 0.1) == 0


def test_backoff_grows_is_jittered_and_honours_retry_after() -> None:
    assert backoff_delay(1, random_fraction=lambda: 0.0) == 0.25
    assert backoff_delay(1, random_fraction=lambda: 1.0) == 0.5
    assert backoff_delay(3, random_fraction=lambda: 1.0) == 0.5 * 1.5**2
    assert backoff_delay(50, random_fraction=lambda: 1.0) == 20.0
    assert backoff_delay(1, retry_after=7) == 7
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "update_wait,post_wait,delete_wait,expected",
    [
        (0.0, 0.0, 0.0, False),  # updating is free: update
        (1.5, 0.0, 0.0, False),  # a short wait: not worth an extra call
        (30.0, 0.0, 0.0, True),  # the update window is full for a while: post anew
        (30.0, 29.8, 0.0, False),  # posting would not be sooner
        (30.0, 0.0, 5.0, False),  # the stale message could not be removed now
    ],
)
def test_cheaper_to_repost(update_wait: float, post_wait: float, delete_wait: float, expected: bool) -> None:
    assert cheaper_to_repost(update_wait=update_wait, post_wait=post_wait, delete_wait=delete_wait) is expected


@pytest.mark.parametrize(
    "a,b",
    [
        ({"waited": 5.0, "unseen_chars": 0}, {"waited": 1.0, "unseen_chars": 0}),  # staler first
        ({"waited": 1.0, "unseen_chars": 800}, {"waited": 1.0, "unseen_chars": 10}),  # more new text first
        ({"waited": 1.0, "unseen_chars": 1000}, {"waited": 4.0, "unseen_chars": 0}),  # a lot of text beats a wait
    ],
)
def test_update_priority_orders_answers(a: dict[str, float], b: dict[str, float]) -> None:
    assert update_priority(**a) > update_priority(**b)  # type: ignore[arg-type]
