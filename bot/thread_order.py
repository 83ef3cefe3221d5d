"""The turns of one thread run in order: each answer builds on the one before it. Different threads run at once.

Within this process a fair lock per thread keeps arrival order. On a shared database (several replicas) a turn
first waits while another process still writes the answer to an earlier question of its thread: before taking
the local lock, which a taken-over earlier answer may itself need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.storage import Store, ThreadKey, Turn

log = logging.getLogger(__name__)

# How often a turn looks whether the answer to an earlier question of its thread, written by another replica,
# is done.
EARLIER_POLL = 0.2


class ThreadOrder:
    def __init__(self, store: Store, *, patience: float) -> None:
        self.store = store
        self._patience = patience  # the longest wait for another process's earlier answer (an answer's timeout)
        self._locks: dict[ThreadKey, tuple[asyncio.Lock, int]] = {}  # lock, turns using it

    @asynccontextmanager
    async def turn(self, turn: Turn) -> AsyncIterator[None]:
        """While the block runs, no other turn of the thread does, and every earlier one is done."""
        if self.store.shared:
            await self._after_earlier_answers(turn)
        key = turn.conversation.key
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:  # asyncio locks are fair: turns run in arrival order
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]  # the thread is idle: forget its lock
            else:
                self._locks[key] = (lock, users - 1)

    async def _after_earlier_answers(self, turn: Turn) -> None:
        waited = 0.0
        while await self.store.earlier_unfinished(turn.conversation.id, turn.user_ts):
            if waited >= self._patience:
                log.warning("gave up waiting for the answer before %s; answering anyway", turn.user_ts)
                return
            await asyncio.sleep(EARLIER_POLL)
            waited += EARLIER_POLL
