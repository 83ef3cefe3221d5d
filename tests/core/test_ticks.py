from __future__ import annotations

import pytest

from bot.core.ticks import TICK, nearest_tick, next_tick

# Timers at every phase of the grid: 200 of them, their moments spread over 2.73 s.
NOWS = [1000.0 + i * 0.0137 for i in range(200)]


def on_grid(at: float) -> bool:
    return abs(at / TICK - round(at / TICK)) < 1e-6


@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0])
def test_reads_due_within_one_tick_share_it_and_still_come_a_pause_apart_on_average(delay: float) -> None:
    reads = {now: now + nearest_tick(now, delay) for now in NOWS}
    for now, at in reads.items():
        assert delay - TICK / 2 - 1e-9 <= at - now <= delay + TICK / 2 + 1e-9
        assert on_grid(at)
    # The span's 28 or 29 ticks, not 200 wake-ups.
    assert len({round(at / TICK) for at in reads.values()}) <= 29
    # The grid moves reads; it does not make them rarer or more frequent.
    assert abs(sum(at - now for now, at in reads.items()) / len(reads) - delay) < TICK / 4


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.95, 1.0])
def test_a_wait_on_the_grid_is_never_shorter_than_asked_and_at_most_a_tick_longer(delay: float) -> None:
    waits = {now: next_tick(now, delay) for now in NOWS}
    for now, wait in waits.items():
        assert delay <= wait <= delay + TICK + 1e-9
        assert on_grid(now + wait) or wait == delay  # on a tick, unless the tick was a rounding error behind
    assert len({round((now + wait) / TICK) for now, wait in waits.items()}) <= 29


def test_a_delay_shorter_than_half_a_tick_may_come_due_at_once_never_in_the_past() -> None:
    assert all(nearest_tick(now, 0.01) >= 0.0 for now in NOWS)
