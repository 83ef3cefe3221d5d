"""A memory of keys seen lately, bounded in number and, where asked, in time.

A long-running process must not remember one more thing per message, or per channel, for ever: what it
remembers only to save a trip (to the store, to Slack) is forgotten after a while or past a number of keys,
oldest first, and the trip is made again.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RecentKeys(Generic[K]):
    """Keys added within the last `horizon` seconds (for ever by default), at most `cap` of them; the oldest are
    forgotten first."""

    def __init__(self, cap: int, horizon: float = math.inf, clock: Callable[[], float] = time.monotonic) -> None:
        self.horizon = horizon
        self.cap = cap
        self._clock = clock
        self._added: OrderedDict[K, float] = OrderedDict()  # oldest first: keys are added as time goes on

    def __contains__(self, key: K) -> bool:
        added = self._added.get(key)
        return added is not None and added > self._clock() - self.horizon

    def __len__(self) -> int:
        return len(self._added)

    def add(self, key: K) -> None:
        now = self._clock()
        self._added[key] = now
        self._added.move_to_end(key)
        oldest = now - self.horizon
        while self._added and (len(self._added) > self.cap or next(iter(self._added.values())) <= oldest):
            self._added.popitem(last=False)
