"""Slack user IDs → display names, so the model can tell who said what. Cached; a failure falls back to
the ID, since a name is a nicety and never worth failing an answer for."""

from __future__ import annotations

import logging

from bot.slack_out import RateLimited, SlackCallError, SlackOut

log = logging.getLogger(__name__)


class UserDirectory:
    def __init__(self, out: SlackOut) -> None:
        self._out = out
        self._names: dict[tuple[str, str], str] = {}

    async def name(self, team_id: str, user_id: str) -> str:
        key = (team_id, user_id)
        if key not in self._names:
            found = await self._lookup(team_id, user_id)
            if found is None:
                return user_id  # not cached: the next turn may get the name
            self._names[key] = found
        return self._names[key]

    async def names(self, team_id: str, user_ids: set[str]) -> dict[str, str]:
        return {uid: await self.name(team_id, uid) for uid in sorted(user_ids)}

    async def _lookup(self, team_id: str, user_id: str) -> str | None:
        try:
            data = await self._out.call(team_id, "users.info", retry_rate_limited=False, user=user_id)
        except (SlackCallError, RateLimited) as exc:
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
