"""One grid of the event loop's clock, for timers that may move by a fraction of a tick.

On the small VMs the bot runs on, every wake-up of the process costs tens of microseconds of CPU, whatever
little work follows it (measured in BENCHMARKS.md). Timers that fall on the same tick fire in one wake-up of
the loop: the model streams' reads (a pause apart) and the answer writers' waits between two updates, dozens
of each a second at company load, share their ticks instead of each waking the process on its own.
"""

from __future__ import annotations

import math

TICK = 0.1  # seconds: a tenth of the pause between updates people see, and of a stream's pause between reads


def nearest_tick(now: float, delay: float, tick: float = TICK) -> float:
    """Seconds from `now` to the tick nearest to `now + delay`: on average `delay` (never below 0)."""
    return max(round((now + delay) / tick) * tick - now, 0.0)


def next_tick(now: float, delay: float, tick: float = TICK) -> float:
    """Seconds from `now` to the first tick at or after `now + delay`: never sooner than `delay`."""
    return max(math.ceil((now + delay) / tick) * tick - now, delay)
