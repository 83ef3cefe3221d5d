"""One grid of the event loop's clock, for timers that may end a little later than asked.

On the small VMs the bot runs on, every wake-up of the process costs tens of microseconds of CPU, whatever
little work follows it (measured in BENCHMARKS.md). Timers that end on the same tick fire in one wake-up of
the loop: the answer writers' waits between two updates, dozens a second at company load, share their ticks
instead of each waking the process on its own.

The model streams' reads stay off the grid: reads that share a tick find their answers' ends together, and
the final updates then queue for Slack's rate budget (at 64 questions in `auto`, the slowest complete answer
came 0.7-0.8 s after the model's end instead of 0.35 s).
"""

from __future__ import annotations

import math

TICK = 0.1  # seconds: a tenth of the interval between two updates people see


def next_tick(now: float, delay: float, tick: float = TICK) -> float:
    """Seconds from `now` to the first tick at or after `now + delay`: never sooner than `delay`."""
    return max(math.ceil((now + delay) / tick) * tick - now, delay)
