"""Slack user IDs → display names, so the model can tell who said what. Cached; a failure falls back to
the ID, since a name is a nicety and never worth failing an answer for.

The cache is bounded: at most `max_entries` names (the least recently used go first), each trusted for
`ttl` seconds so renamed people show under their new name. An ID Slack says it does not know (someone of
another organisation, a deleted account) is remembered as itself for `unknown_ttl`, and answers that need
the same name at once share one look-up: a burst of questions from one person costs one `users.info`.
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
UNKNOWN_TTL = 3600.0
# Slack's answers that no name exists for this ID, for this app (unlike a failure, asking again soon won't help).
UNKNOWN_USER = frozenset({"user_not_found", "user_not_visible"})
# Seconds a look-up may take, waiting for its rate-limit slot included, before the ID stands in for the name.
LOOKUP_TIMEOUT = 2.0


class UserDirectory:
    def __init__(
        self,
        out: SlackApi,
        *,
        max_entries: int = MAX_ENTRIES,
        ttl: float = TTL,
        unknown_ttl: float = UNKNOWN_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._max_entries = max_entries
        self._ttl = ttl
        self._unknown_ttl = unknown_ttl
        self._clock = clock
        # (team, user) → (name, when it stops being trusted); least recently used first
        self._names: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Task[tuple[str, float] | None]] = {}

    def __len__(self) -> int:
        return len(self._names)

    async def name(self, team_id: str, user_id: str) -> str:
        key = (team_id, user_id)
        cached = self._names.get(key)
        if cached is not None:
            self._names.move_to_end(key)
            if self._clock() < cached[1]:
                return cached[0]
        lookup = self._pending.get(key)
        if lookup is None:
            lookup = self._pending[key] = asyncio.create_task(self._lookup(team_id, user_id))
            lookup.add_done_callback(lambda _: self._pending.pop(key, None))
        # Shielded: one asker cancelled leaves the look-up to the others (it ends within LOOKUP_TIMEOUT).
        found = await asyncio.shield(lookup)
        if found is None:
            # Not cached anew: the next turn may get the name. A stale name beats the bare ID meanwhile.
            return cached[0] if cached is not None else user_id
        self._names[key] = found
        self._names.move_to_end(key)
        while len(self._names) > self._max_entries:
            self._names.popitem(last=False)
        return found[0]

    async def names(self, team_id: str, user_ids: set[str]) -> dict[str, str]:
        return {uid: await self.name(team_id, uid) for uid in sorted(user_ids)}

    async def _lookup(self, team_id: str, user_id: str) -> tuple[str, float] | None:
        """The name and until when to trust it; None when Slack could not say this time."""
        try:
            # An answer waits for the names of its speakers: never for longer than a name is worth.
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                data = await self._out.call(team_id, "users.info", retry_rate_limited=False, user=user_id)
        except SlackCallError as exc:
            if exc.error in UNKNOWN_USER:
                log.info("users.info %s: %s; using the ID", user_id, exc.error)
                return user_id, self._clock() + self._unknown_ttl
            log.info("users.info %s failed (%s); using the ID", user_id, exc)
            return None
        except (RateLimited, TimeoutError) as exc:
            log.info("users.info %s failed (%s); using the ID", user_id, exc)
            return None
        user = data.get("user") or {}
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )
        return name, self._clock() + self._ttl
