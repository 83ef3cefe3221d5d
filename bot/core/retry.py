"""When and how long to wait before asking the model API again: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
INITIAL_DELAY = 0.5
MULTIPLIER = 1.5
MAX_DELAY = 20.0


def backoff_delay(
    attempt: int, *, retry_after: float | None = None, random_fraction: Callable[[], float] = random.random
) -> float:
    """Delay before retry number `attempt` (1-based); a server's `Retry-After` wins when it gives one."""
    if retry_after is not None and retry_after >= 0:
        return retry_after
    ceiling = min(INITIAL_DELAY * MULTIPLIER ** (attempt - 1), MAX_DELAY)
    # Half fixed, half random: spreads retries from many threads without ever retrying at once.
    return ceiling / 2 + ceiling / 2 * random_fraction()


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough that our own backoff is good enough
    return seconds if seconds >= 0 else None
