"""Slack user IDs → display names, so the model can tell who said what. Cached; a failure falls back to
the ID, since a name is a nicety and never worth failing an answer for.

The cache is bounded: at most `max_entries` names (the least recently used go first), each trusted for
`ttl` seconds so renamed people show under their new name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from bot.slack.api import RateLimited, SlackApi, SlackCallError

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
TTL = 24 * 3600.0
# Seconds a look-up may take, waiting for its rate-limit slot included, before the ID stands in for the name.
LOOKUP_TIMEOUT = 2.0


class UserDirectory:
    def __init__(
        self,
        out: SlackApi,
        *,
        max_entries: int = MAX_ENTRIES,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        # (team, user) → (name, when it was read); least recently used first
        self._names: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    async def name(self, team_id: str, user_id: str) -> str:
        key = (team_id, user_id)
        cached = self._names.get(key)
        if cached is not None:
            self._names.move_to_end(key)
            if self._clock() - cached[1] < self._ttl:
                return cached[0]
        found = await self._lookup(team_id, user_id)
        if found is None:
            # Not cached anew: the next turn may get the name. A stale name beats the bare ID meanwhile.
            return cached[0] if cached is not None else user_id
        self._names[key] = (found, self._clock())
        self._names.move_to_end(key)
        while len(self._names) > self._max_entries:
            self._names.popitem(last=False)
        return found

    async def names(self, team_id: str, user_ids: set[str]) -> dict[str, str]:
        return {uid: await self.name(team_id, uid) for uid in sorted(user_ids)}

    async def _lookup(self, team_id: str, user_id: str) -> str | None:
        try:
            # An answer waits for the names of its speakers: never for longer than a name is worth.
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                data = await self._out.call(team_id, "users.info", retry_rate_limited=False, user=user_id)
        except (SlackCallError, RateLimited, TimeoutError) as exc:
            log.info("users.info %s failed (%s); using the ID", user_id, exc)
            return None
        user = data.get("user") or {}
        profile = user.get("profile") or {}
        return (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )
