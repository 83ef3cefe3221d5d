from __future__ import annotations

import pytest

from bot.core.ticks import TICK, next_tick

# Timers at every phase of the grid: 200 of them, their moments spread over 2.73 s.
NOWS = [1000.0 + i * 0.0137 for i in range(200)]


def on_grid(at: float) -> bool:
    return abs(at / TICK - round(at / TICK)) < 1e-6


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.95, 1.0])
def test_a_wait_on_the_grid_is_never_shorter_than_asked_and_at_most_a_tick_longer(delay: float) -> None:
    waits = {now: next_tick(now, delay) for now in NOWS}
    for now, wait in waits.items():
        assert delay <= wait <= delay + TICK + 1e-9
        assert on_grid(now + wait) or wait == delay  # on a tick, unless the tick was a rounding error behind
    # 200 waits whose ends spread over 2.73 s share the span's 28 or 29 ticks: 29 wake-ups, not 200.
    assert len({round((now + wait) / TICK) for now, wait in waits.items()}) <= 29
