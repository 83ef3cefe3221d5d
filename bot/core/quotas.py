"""Quotas: a person's tokens a day (USER_DAILY_TOKENS) and the workspace's spend a month (WORKSPACE_MONTHLY_BUDGET).

Periods are calendar days and months in UTC, the same for everyone, so a quota resets at one instant that the
note can name. Past a quota no model call is made; the note tells the person when they can ask again, in Slack's
date formatting, which each reader sees in their own time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.prices import CURRENCY, money

# Admins hear once a month when the workspace's spend reaches this share of its budget.
ALERT_SHARE = 0.8

USER_DAILY_TOKENS = "user_daily_tokens"
WORKSPACE_MONTHLY_BUDGET = "workspace_monthly_budget"


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def day_start(now: float) -> float:
    """Midnight UTC at or before `now`."""
    return _utc(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_day(now: float) -> float:
    """The next midnight UTC: when today's token counts start again."""
    return (_utc(day_start(now)) + timedelta(days=1)).timestamp()


def month_start(now: float) -> float:
    return _utc(day_start(now)).replace(day=1).timestamp()


def next_month(now: float) -> float:
    start = _utc(month_start(now))
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month).timestamp()


def month_label(now: float) -> str:
    return _utc(now).strftime("%Y-%m")


def slack_date(ts: float) -> str:
    """A moment as Slack shows it to each reader in their own time zone ("tomorrow at 2:00 AM"); UTC as fallback."""
    fallback = _utc(ts).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(ts)}^{{date_short_pretty}} at {{time}}|{fallback}>"


@dataclass(frozen=True)
class Limits:
    """None: no such quota. A quota of 0 refuses every question (a deliberate stop)."""

    user_daily_tokens: int | None = None
    workspace_monthly_budget: float | None = None  # in the price table's currency

    @property
    def active(self) -> bool:
        return self.user_daily_tokens is not None or self.workspace_monthly_budget is not None


@dataclass(frozen=True)
class Refusal:
    reason: str  # USER_DAILY_TOKENS | WORKSPACE_MONTHLY_BUDGET
    resets_at: float
    text: str  # the private note for the person who asked


def check(
    limits: Limits,
    *,
    user_tokens_today: int,
    workspace_cost_month: float,
    now: float,
    currency: str = CURRENCY,
) -> Refusal | None:
    """A Refusal when a quota is used up (reached counts as used up), else None.

    The workspace budget wins when both are past: waiting for tomorrow would not help the person then.
    """
    budget = limits.workspace_monthly_budget
    if budget is not None and workspace_cost_month >= budget:
        resets = next_month(now)
        return Refusal(
            reason=WORKSPACE_MONTHLY_BUDGET,
            resets_at=resets,
            text=(
                f"This workspace has used its monthly budget for me ({money(budget, currency)}), so I can't answer "
                f"until it resets {slack_date(resets)}. I haven't sent your question to the model. "
                "An admin can raise WORKSPACE_MONTHLY_BUDGET."
            ),
        )
    daily = limits.user_daily_tokens
    if daily is not None and user_tokens_today >= daily:
        resets = next_day(now)
        return Refusal(
            reason=USER_DAILY_TOKENS,
            resets_at=resets,
            text=(
                f"You've used your {daily:,} tokens for today, so I can't answer until your quota resets "
                f"{slack_date(resets)}. I haven't sent your question to the model. `/usage` shows your figures."
            ),
        )
    return None


def budget_alert_due(limits: Limits, workspace_cost_month: float) -> bool:
    """Whether the month's spend reached 80% of the budget (the caller tells admins once a month)."""
    budget = limits.workspace_monthly_budget
    # A budget of 0 is a deliberate stop, not a spend to warn about.
    return budget is not None and budget > 0 and workspace_cost_month >= ALERT_SHARE * budget


def budget_alert_text(*, cost: float, budget: float, currency: str, now: float) -> str:
    """The admins' DM: how much of the month's budget is used, when it resets, and what happens past it."""
    share = cost / budget if budget > 0 else 1.0
    used = f"{money(cost, currency)} of its {money(budget, currency)} monthly budget ({share:.0%})"
    reset = f"The budget resets {slack_date(next_month(now))}."
    if cost >= budget:
        return (
            f":warning: This workspace has used {used}. I now answer no one: each person who asks gets a private "
            f"note saying when the budget resets, and no model call is made. {reset} "
            "To go on, raise WORKSPACE_MONTHLY_BUDGET. `/usage` shows who and where."
        )
    return (
        f":warning: This workspace has used {used}. Past the budget I stop calling the model and tell each "
        f"person who asks, privately, when the budget resets. {reset} `/usage` shows who and where."
    )
