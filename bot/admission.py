"""Who may ask, within what quota, and what each answer cost: the admins' policies at the edges of a turn.

Access (ALLOWED_CHANNELS, ALLOWED_USERS) is decided before a message is stored: elsewhere a mention gets one
private note, and nothing is kept. Quotas (USER_DAILY_TOKENS, WORKSPACE_MONTHLY_BUDGET) are checked before the
model is called. After the model answers, its reported usage is stored with its cost, and the admins hear once
(across replicas) when the workspace has spent 80% of its monthly budget. The decisions are `bot.core`'s; this
class does their I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bot.core.access import Access
from bot.core.prices import CURRENCY, Price, cost, price_for
from bot.core.quotas import (
    Limits,
    Refusal,
    budget_alert_due,
    budget_alert_text,
    check,
    day_start,
    month_label,
    month_start,
)
from bot.core.routing import Incoming
from bot.ports import SlackOut
from bot.slack.api import RateLimited, SlackCallError
from bot.storage import Store, StoreUnavailable, Turn, Usage, UsageRecord

log = logging.getLogger(__name__)

BUDGET_NOTICE = "budget-80"
NOT_ALLOWED_NOTICE = "not-allowed"


@dataclass(frozen=True)
class Policy:
    """The admins' settings this module applies."""

    access: Access = field(default_factory=Access)
    limits: Limits = field(default_factory=Limits)
    prices: Mapping[str, Price] | None = None  # None → every answer costs 0
    admins: frozenset[str] = frozenset()
    currency: str = CURRENCY


class Admission:
    def __init__(self, store: Store, out: SlackOut, policy: Policy, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.out = out
        self.policy = policy
        self._clock = clock

    def refusal(self, channel_id: str, user_id: str) -> str | None:
        """The private note for someone the bot is not enabled for here; None when it may answer."""
        return self.policy.access.note(channel_id, user_id)

    async def refuse(self, message: Incoming, note: str) -> None:
        """A mention where the bot is not enabled: one private note, whichever replica gets which delivery."""
        ref = f"{message.channel_id}/{message.ts}"
        if not await self.store.claim_notice(message.team_id, NOT_ALLOWED_NOTICE, ref):
            return
        thread = message.thread_ts if message.in_thread else None
        try:
            await self.out.ephemeral(message.team_id, message.channel_id, message.user_id, note, thread)
        except (SlackCallError, RateLimited) as exc:
            log.info("could not tell %s the bot is not enabled here: %r", message.user_id, exc)

    async def over_quota(self, team_id: str, user_id: str) -> Refusal | None:
        """The refusal when the person or the workspace is past a quota (no model call then), else None."""
        limits = self.policy.limits
        if not limits.active:
            return None
        now = self._clock()
        used_today = 0
        if limits.user_daily_tokens is not None:
            used_today = (await self.store.usage_total(since=day_start(now), team_id=team_id, user_id=user_id)).tokens
        spent = 0.0
        if limits.workspace_monthly_budget is not None:
            spent = (await self.store.usage_total(since=month_start(now), team_id=team_id)).cost
        return check(limits, user_tokens_today=used_today, workspace_cost_month=spent, now=now)

    async def record(self, turn: Turn, asker: str, model: str, usage: Usage) -> UsageRecord | None:
        """Store the usage the model reported for this answer, with its cost; None when the database is out of
        reach (the answer stands whatever happens here, so that is only logged)."""
        try:
            record = await self._record(turn, asker, model, usage)
        except StoreUnavailable as exc:
            log.warning("could not store the answer's usage (%s)", exc)
            return None
        log.info(
            "answered: %d prompt (%d cached) + %d completion tokens of %s, %.6f %s",
            record.prompt_tokens,
            record.cached_tokens,
            record.completion_tokens,
            model,
            record.cost,
            self.policy.currency,
        )
        return record

    async def _record(self, turn: Turn, asker: str, model: str, usage: Usage) -> UsageRecord:
        price = price_for(model, self.policy.prices) if self.policy.prices is not None else None
        key = turn.conversation.key
        record = UsageRecord(
            team_id=key.team_id,
            channel_id=key.channel_id,
            user_id=asker or None,
            answer_id=turn.answer_id,
            model=model,
            persona=turn.conversation.persona.name,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost=cost(
                price,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
            ),
            at=self._clock(),
        )
        await self.store.record_usage(record)
        if self.policy.limits.workspace_monthly_budget is not None:
            await self._budget_alert(key.team_id)
        return record

    async def _budget_alert(self, team_id: str) -> None:
        budget = self.policy.limits.workspace_monthly_budget
        assert budget is not None
        now = self._clock()
        spent = (await self.store.usage_total(since=month_start(now), team_id=team_id)).cost
        if not budget_alert_due(self.policy.limits, spent):
            return
        if not await self.store.claim_notice(team_id, BUDGET_NOTICE, month_label(now)):
            return  # told already this month, by this process or another
        if not self.policy.admins:
            log.warning("the workspace spent %.0f%% of its monthly budget; BOT_ADMINS is empty", 100 * spent / budget)
            return
        text = budget_alert_text(cost=spent, budget=budget, currency=self.policy.currency, now=now)
        for admin in sorted(self.policy.admins):
            try:
                await self.out.post(team_id, admin, text)  # the admin's DM with the app
            except (SlackCallError, RateLimited) as exc:
                log.warning("could not tell admin %s about the budget: %r", admin, exc)
