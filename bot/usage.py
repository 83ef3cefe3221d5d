"""`/usage`: the person's own figures this month, and for admins the channel's and the workspace's top users and
channels. The store adds the figures up; `bot.core.usage_report` words them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.core.prices import CURRENCY
from bot.core.quotas import Limits, day_start, month_label, month_start
from bot.core.usage_report import admin_summary, personal_summary
from bot.storage import Store, UsageRow

if TYPE_CHECKING:
    from bot.conversation import Conversations

# How many people and channels an admin sees in each list: enough to find who spends, short enough to read.
TOP = 5


class UsageReports:
    def __init__(
        self,
        store: Store,
        *,
        admins: frozenset[str],
        limits: Limits,
        currency: str = CURRENCY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.admins = admins
        self.limits = limits
        self.currency = currency
        self._clock = clock

    @classmethod
    def of(cls, conversations: Conversations) -> UsageReports:
        """The reports for what the conversations already apply: their store, admins, quotas and currency."""
        policy = conversations.admission.policy
        return cls(conversations.store, admins=policy.admins, limits=policy.limits, currency=policy.currency)

    async def reply(self, *, team_id: str, channel_id: str, user_id: str) -> str:
        now = self._clock()
        since = month_start(now)
        label = month_label(now)
        mine = await self.store.usage_total(since=since, team_id=team_id, user_id=user_id)
        today: int | None = None
        if self.limits.user_daily_tokens is not None:
            today = (await self.store.usage_total(since=day_start(now), team_id=team_id, user_id=user_id)).tokens
        text = personal_summary(
            mine, month_label=label, currency=self.currency, daily_tokens_used=today, limits=self.limits
        )
        # With no admins configured nobody sees others' figures: usage names people.
        if user_id not in self.admins:
            return text
        store = self.store
        channel: UsageRow | None = None
        channel_users: list[UsageRow] = []
        # In a DM the "channel" is the admin's own conversation with the bot: nothing an admin needs to see.
        if not channel_id.startswith("D"):
            channel = await store.usage_total(since=since, team_id=team_id, channel_id=channel_id)
            channel_users = await store.usage_by("user", since=since, team_id=team_id, channel_id=channel_id, limit=TOP)
        report = admin_summary(
            channel,
            channel_users,
            await store.usage_total(since=since, team_id=team_id),
            await store.usage_by("user", since=since, team_id=team_id, limit=TOP),
            await store.usage_by("channel", since=since, team_id=team_id, limit=TOP),
            currency=self.currency,
            month_label=label,
            budget=self.limits.workspace_monthly_budget,
        )
        return f"{text}\n\n{report}"
