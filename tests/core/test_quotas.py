from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.quotas import (
    USER_DAILY_TOKENS,
    WORKSPACE_MONTHLY_BUDGET,
    Limits,
    budget_alert_due,
    budget_alert_text,
    check,
    day_start,
    month_label,
    month_start,
    next_day,
    next_month,
    slack_date,
)


def at(text: str) -> float:
    """A UTC moment written as ISO text."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "now,day,tomorrow,month,following,label",
    [
        ("2026-11-15 13:45:10", "2026-11-15", "2026-11-16", "2026-11-01", "2026-12-01", "2026-11"),
        ("2026-11-15 00:00:00", "2026-11-15", "2026-11-16", "2026-11-01", "2026-12-01", "2026-11"),
        ("2026-11-30 23:59:59", "2026-11-30", "2026-12-01", "2026-11-01", "2026-12-01", "2026-11"),
        ("2026-12-31 23:00:00", "2026-12-31", "2027-01-01", "2026-12-01", "2027-01-01", "2026-12"),
        ("2028-02-28 12:00:00", "2028-02-28", "2028-02-29", "2028-02-01", "2028-03-01", "2028-02"),  # leap year
        ("2026-01-01 00:00:00", "2026-01-01", "2026-01-02", "2026-01-01", "2026-02-01", "2026-01"),
    ],
)
def test_periods_are_utc_days_and_months(
    now: str, day: str, tomorrow: str, month: str, following: str, label: str
) -> None:
    t = at(now)
    assert day_start(t) == at(day)
    assert next_day(t) == at(tomorrow)
    assert month_start(t) == at(month)
    assert next_month(t) == at(following)
    assert month_label(t) == label


def test_slack_date_shows_each_reader_their_time_with_a_utc_fallback() -> None:
    assert slack_date(at("2026-12-01 00:00")) == (
        f"<!date^{int(at('2026-12-01 00:00'))}^{{date_short_pretty}} at {{time}}|2026-12-01 00:00 UTC>"
    )


def test_limits_are_active_when_any_is_set() -> None:
    assert not Limits().active
    assert Limits(user_daily_tokens=1000).active
    assert Limits(workspace_monthly_budget=0.0).active


NOW = at("2026-11-15 13:45")
TOMORROW = at("2026-11-16")
NEXT_MONTH = at("2026-12-01")
BOTH = Limits(user_daily_tokens=10_000, workspace_monthly_budget=50.0)


@pytest.mark.parametrize(
    "limits,tokens,spent,reason,resets",
    [
        (Limits(), 10**9, 10**6, None, None),
        (BOTH, 0, 0.0, None, None),
        (BOTH, 9_999, 49.99, None, None),
        (BOTH, 10_000, 0.0, USER_DAILY_TOKENS, TOMORROW),  # reaching the quota uses it up
        (BOTH, 25_000, 0.0, USER_DAILY_TOKENS, TOMORROW),
        (BOTH, 0, 50.0, WORKSPACE_MONTHLY_BUDGET, NEXT_MONTH),
        (BOTH, 10_000, 60.0, WORKSPACE_MONTHLY_BUDGET, NEXT_MONTH),  # the budget wins when both are past
        (Limits(user_daily_tokens=10_000), 5, 10**6, None, None),
        (Limits(workspace_monthly_budget=50.0), 10**9, 1.0, None, None),
        (Limits(user_daily_tokens=0), 0, 0.0, USER_DAILY_TOKENS, TOMORROW),  # 0: a deliberate stop
        (Limits(workspace_monthly_budget=0.0), 0, 0.0, WORKSPACE_MONTHLY_BUDGET, NEXT_MONTH),
    ],
)
def test_check(limits: Limits, tokens: int, spent: float, reason: str | None, resets: float | None) -> None:
    refusal = check(limits, user_tokens_today=tokens, workspace_cost_month=spent, now=NOW)
    if reason is None:
        assert refusal is None
        return
    assert refusal is not None
    assert (refusal.reason, refusal.resets_at) == (reason, resets)
    assert slack_date(resets) in refusal.text  # says when, in the reader's own time zone
    assert "haven't sent your question" in refusal.text


def test_refusal_notes_name_the_quota() -> None:
    daily = check(BOTH, user_tokens_today=10_000, workspace_cost_month=0, now=NOW)
    assert daily is not None and "your 10,000 tokens for today" in daily.text
    budget = check(BOTH, user_tokens_today=0, workspace_cost_month=50, now=NOW)
    assert budget is not None and "monthly budget for me ($50.00)" in budget.text
    assert "WORKSPACE_MONTHLY_BUDGET" in budget.text
    euros = check(BOTH, user_tokens_today=0, workspace_cost_month=50, now=NOW, currency="EUR")
    assert euros is not None and "€50.00" in euros.text


@pytest.mark.parametrize(
    "limits,spent,due",
    [
        (Limits(), 10**6, False),
        (Limits(user_daily_tokens=5), 10**6, False),
        (Limits(workspace_monthly_budget=100.0), 0.0, False),
        (Limits(workspace_monthly_budget=100.0), 79.99, False),
        (Limits(workspace_monthly_budget=100.0), 80.0, True),
        (Limits(workspace_monthly_budget=100.0), 150.0, True),
        (Limits(workspace_monthly_budget=0.0), 0.0, False),  # a deliberate stop is no news to admins
    ],
)
def test_budget_alert_due(limits: Limits, spent: float, due: bool) -> None:
    assert budget_alert_due(limits, spent) is due


def test_budget_alert_text_says_how_much_when_and_what_next() -> None:
    text = budget_alert_text(cost=82.5, budget=100.0, currency="USD", now=NOW)
    assert "$82.50 of its $100.00 monthly budget (82%)" in text
    assert slack_date(NEXT_MONTH) in text
    assert "stop calling the model" in text
    past = budget_alert_text(cost=100.0, budget=100.0, currency="USD", now=NOW)
    assert "(100%)" in past and "I now answer no one" in past and "WORKSPACE_MONTHLY_BUDGET" in past
