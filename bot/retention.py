"""RETENTION_DAYS: stored messages older than that are deleted, at start and then every hour; usage stays.

Every replica runs it: the delete is one statement per pass, and a second replica's pass finds nothing left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.storage import Store, StoreError

log = logging.getLogger(__name__)

RETENTION_INTERVAL = 3600.0  # seconds between passes: a day's policy needs no finer grain
DAY = 86_400.0


async def forget_old(store: Store, days: float, *, now: float) -> int:
    """One pass: delete what is older than `days`; returns how many messages went."""
    deleted = await store.forget_before(now - days * DAY)
    if deleted:
        log.info("retention: deleted %d stored messages older than %g days", deleted, days)
    return deleted


async def keep_retention(
    store: Store,
    days: float,
    stop: asyncio.Event,
    *,
    interval: float = RETENTION_INTERVAL,
    clock: Callable[[], float] = time.time,
) -> None:
    """Until `stop` is set: a pass now, then one every `interval` seconds. A database out of reach skips a pass."""
    while not stop.is_set():
        try:
            await forget_old(store, days, now=clock())
        except StoreError as exc:
            log.warning("retention: the database is out of reach (%s); trying again later", type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
