from __future__ import annotations

import pytest

from bot.core.pacing import EDGE_MARGIN, CallBudget, Limit, cheaper_to_repost, update_priority
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
    assert budget.wait_time("chat.update", 7.0, reserve=3) == 53.0 + EDGE_MARGIN
    assert budget.wait_time("chat.update", 7.0) == 0.0  # a final may use the reserve


def test_a_429_pauses_the_key_and_lowers_the_limit() -> None:
    budget = CallBudget({"chat.update": Limit(50, 60.0)})
    budget.wait_time("chat.update", 0.0)  # watched for a whole window before the 429: a sample to learn from
    for i in range(21):
        budget.record("chat.update", 100 + i * 0.1)
    budget.rate_limited("chat.update", 102.1, retry_after=3)
    assert budget.wait_time("chat.update", 102.2) > 2.8
    assert budget.limit("chat.update") == Limit(20, 60.0)
    assert budget.rate_limited_count == 1


def test_scoped_keys_share_their_methods_limit_but_not_its_window() -> None:
    budget = CallBudget({"chat.postMessage": Limit(1, 1.0)})
    budget.record("chat.postMessage#C1", 0.0)
    assert budget.wait_time("chat.postMessage#C1", 0.1) > 0
    assert budget.wait_time("chat.postMessage#C2", 0.1) == 0


# What the shared budget (every replica's calls) says of a key ---------------------------------------------


def test_an_observed_window_replaces_the_local_one() -> None:
    budget = CallBudget({"chat.update": Limit(4, 60.0)})
    budget.record("chat.update", 10.0)  # this replica's own call, which the shared window holds too
    budget.observe("chat.update", 20.0, [10.0, 12.0, 19.0, 20.0])
    assert budget.used("chat.update", 20.0) == 4  # not 5: the own call is counted once
    # Full: the next call waits for the oldest of the window (t=10) to leave it.
    assert budget.wait_time("chat.update", 20.0) == pytest.approx(10.0 + 60.0 + EDGE_MARGIN - 20.0)
    budget.observe("chat.update", 21.0, [])  # another replica's view: the window is empty after all
    assert budget.used("chat.update", 21.0) == 0
    assert budget.tracked_keys() == set()


def test_an_observed_window_drops_what_is_past_and_keeps_order() -> None:
    budget = CallBudget({"chat.update": Limit(3, 60.0)})
    budget.observe("chat.update", 100.0, [99.0, 30.0, 50.0, 70.0])  # 30.0 left the window at 90.5
    assert budget.used("chat.update", 100.0) == 3
    assert budget.wait_time("chat.update", 100.0) == pytest.approx(50.0 + 60.0 + EDGE_MARGIN - 100.0)


def test_an_observed_pause_pauses_the_key_but_teaches_no_limit() -> None:
    budget = CallBudget({"chat.update": TIER})
    budget.wait_time("chat.update", 0.0)
    budget.observe("chat.update", 100.0, [99.0], paused_until=130.0)  # another replica met a 429
    assert budget.wait_time("chat.update", 100.0) == pytest.approx(30.0)
    assert budget.limit("chat.update") == TIER and budget.rate_limited_count == 0
    budget.observe("chat.update", 101.0, [99.0], paused_until=110.0)  # an older word never shortens a pause
    assert budget.wait_time("chat.update", 101.0) == pytest.approx(29.0)
    budget.observe("chat.update", 131.0, [99.0])
    assert budget.wait_time("chat.update", 131.0) == 0.0


def test_allowed_is_the_limit_less_the_reserve_and_never_zero() -> None:
    budget = CallBudget({"chat.update": TIER, "chat.postMessage": Limit(10, 10.0)})
    budget.wait_time("chat.update", 0.0)
    assert budget.allowed("chat.update", 0.0) == 50
    assert budget.allowed("chat.update", 0.0, reserve=3) == 47
    assert budget.allowed("chat.update", 0.0, reserve=80) == 1
    budget.record("chat.update", 100.0)
    budget.rate_limited("chat.update", 100.0, retry_after=5)
    assert budget.allowed("chat.update", 106.0) == 12  # a learned limit, what the shared budget is told
    assert budget.span("chat.update") == 60.0 + EDGE_MARGIN
    assert budget.span("chat.postMessage#C1") == 10.0 + EDGE_MARGIN  # a scoped key: its method's window


# Learning from 429s, and forgetting what was learned -------------------------------------------------------

TIER = Limit(50, 60.0)


def calls_within(budget: CallBudget, key: str, start: float, end: float, step: float = 0.1) -> int:
    """How many calls a caller that takes every free slot gets through between `start` and `end`."""
    made, now = 0, start
    while now < end:
        if budget.wait_time(key, now) == 0:
            budget.record(key, now)
            made += 1
        now += step
    return made


def test_a_429_right_after_a_restart_teaches_nothing_but_the_pause() -> None:
    # The previous process filled Slack's window; this one makes 2 calls, and the third meets a 429.
    budget = CallBudget({"chat.update": TIER})
    for t in (0.0, 1.0, 2.0):
        assert budget.wait_time("chat.update", t) == 0
        budget.record("chat.update", t)
    budget.rate_limited("chat.update", 2.0, retry_after=30)
    assert budget.wait_time("chat.update", 2.1) == pytest.approx(29.9)  # Slack's window frees at t=32
    assert budget.wait_time("chat.update", 32.0) == 0
    assert budget.limit("chat.update") == TIER  # two calls are not Slack's limit
    assert calls_within(budget, "chat.update", 32.0, 92.0) >= 45  # back near the tier within one window


def test_a_single_429_never_cuts_below_a_quarter_of_the_tier() -> None:
    budget = CallBudget({"chat.update": TIER})
    budget.wait_time("chat.update", 0.0)  # the budget has watched the key since t=0
    for t in (100.0, 101.0, 102.0):
        budget.record("chat.update", t)
    budget.rate_limited("chat.update", 102.0, retry_after=30)
    assert budget.limit("chat.update") == Limit(12, 60.0)
    assert calls_within(budget, "chat.update", 102.0, 200.0) >= 12  # well above one a minute


@pytest.mark.parametrize(
    # Each step: at `at`, `made` calls sit in the window (made at at-50 s), then a call meets a 429.
    "steps,expected",
    [
        ([(100.0, 30, 5.0)], 30),  # one trusted sample above the floor: believed
        ([(100.0, 3, 5.0)], 12),  # one sample far below the tier: no lower than a quarter of it
        ([(100.0, 3, 5.0), (100.0, 0, 5.0)], 12),  # a burst refused together is one sample
        ([(100.0, 3, 5.0), (104.0, 0, 5.0)], 12),  # still inside the first pause: the same burst
        ([(100.0, 3, 5.0), (106.0, 1, 5.0)], 4),  # a second 429 after the pause confirms a low limit
        ([(100.0, 3, 5.0), (300.0, 2, 5.0)], 12),  # too far apart to confirm each other
        ([(10.0, 3, 5.0), (20.0, 3, 5.0)], 50),  # both within a window of the start: Slack counted unseen calls
        ([(100.0, 60, 5.0)], 50),  # never above the tier
    ],
)
def test_what_429s_teach(steps: list[tuple[float, int, float]], expected: int) -> None:
    budget = CallBudget({"chat.update": TIER})
    budget.wait_time("chat.update", 0.0)  # the budget starts watching
    for at, made, retry_after in steps:
        for i in range(made):
            budget.record("chat.update", at - 50 + i * 0.1)
        budget.record("chat.update", at)  # the refused call: recorded when it went, not counted by Slack
        budget.rate_limited("chat.update", at, retry_after=retry_after)
    assert budget.limit("chat.update").calls == expected
    assert budget.rate_limited_count == len(steps)


def test_learned_limits_recover_step_by_step_back_to_the_tier_and_never_above() -> None:
    budget = CallBudget({"chat.update": TIER})
    budget.wait_time("chat.update", 0.0)
    budget.record("chat.update", 100.0)
    budget.rate_limited("chat.update", 100.0, retry_after=5)
    budget.record("chat.update", 106.0)
    budget.rate_limited("chat.update", 106.0, retry_after=4)  # confirmed: one call a minute
    assert budget.limit("chat.update").calls == 1
    seen = []
    for now in (110.0, 169.0, 170.0, 230.0, 290.0, 350.0, 410.0, 470.0, 530.0, 600.0, 900.0):
        budget.wait_time("chat.update", now)
        seen.append(budget.limit("chat.update").calls)
    # Quiet from the end of the pause (t=110): each window without a 429 doubles the limit, up to the tier.
    assert seen == [1, 1, 2, 4, 8, 16, 32, 50, 50, 50, 50]


def test_a_429_while_recovering_starts_the_quiet_period_again() -> None:
    budget = CallBudget({"chat.update": TIER})
    budget.wait_time("chat.update", 0.0)
    for t in (100.0, 106.0):
        budget.record("chat.update", t)
        budget.rate_limited("chat.update", t, retry_after=4)
    assert budget.limit("chat.update").calls == 1
    budget.wait_time("chat.update", 171.0)
    assert budget.limit("chat.update").calls == 2
    budget.record("chat.update", 172.0)
    budget.rate_limited("chat.update", 172.0, retry_after=10)  # the probe was too much: confirmed again
    assert budget.limit("chat.update").calls == 1
    budget.wait_time("chat.update", 240.0)
    assert budget.limit("chat.update").calls == 1  # quiet only since t=182
    budget.wait_time("chat.update", 242.0)
    assert budget.limit("chat.update").calls == 2


def test_a_429_in_the_same_burst_delays_the_probe_up() -> None:
    budget = CallBudget({"chat.update": TIER})
    budget.wait_time("chat.update", 0.0)
    budget.rate_limited("chat.update", 100.0, retry_after=5)  # learned: the floor, paused until 105
    budget.rate_limited("chat.update", 101.0, retry_after=30)  # the same burst: paused until 131
    assert budget.limit("chat.update").calls == 12
    budget.wait_time("chat.update", 170.0)
    assert budget.limit("chat.update").calls == 12  # a window after the first pause, but not the second
    budget.wait_time("chat.update", 191.0)
    assert budget.limit("chat.update").calls == 24


def test_scoped_keys_are_forgotten_once_idle_and_recovered() -> None:
    budget = CallBudget({"chat.postMessage": Limit(10, 10.0), "chat.update": TIER})
    budget.wait_time("chat.update", 0.0)
    for i in range(5000):
        budget.record(f"chat.postMessage#C{i}", 100.0 + i * 0.001)
    budget.record("chat.postMessage#C1", 104.0)
    budget.rate_limited("chat.postMessage#C1", 104.0, retry_after=30)
    assert budget.limit("chat.postMessage#C1") == Limit(2, 10.0)  # a quarter of the tier: the floor
    assert len(budget.tracked_keys()) == 5000
    budget.wait_time("chat.update", 120.0)
    assert budget.tracked_keys() == {"chat.postMessage#C1"}  # idle windows gone; C1 paused and still learning
    assert budget.used("chat.postMessage#C2", 120.0) == 0
    assert budget.wait_time("chat.postMessage#C1", 120.0) == pytest.approx(14.0)
    budget.wait_time("chat.update", 300.0)
    assert budget.tracked_keys() == set()  # recovered: back to the method's tier
    assert budget.limit("chat.postMessage#C1") == Limit(10, 10.0)


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


def test_a_call_leaves_the_window_a_margin_after_it_ends() -> None:
    """Slack counts arrivals by its own clock: a call sent exactly one window later may arrive inside it."""
    budget = CallBudget({"chat.update": Limit(1, 60.0)})
    budget.record("chat.update", 0.0)
    assert budget.wait_time("chat.update", 60.0) > 0
    assert budget.wait_time("chat.update", 60.0 + EDGE_MARGIN) == 0.0
