"""`/usage` end to end, over HTTP and Socket Mode: figures recorded in the store, read back privately."""

from __future__ import annotations

import time

from bot.core.quotas import month_label, month_start
from bot.storage import UsageRecord
from tests.conftest import Harness
from tests.fakes.slack import TEAM

ENG = "C0ENG"
SALES = "C0SALES"


async def record(
    harness: Harness,
    user: str | None,
    channel: str,
    *,
    cost: float,
    prompt: int = 1000,
    completion: int = 200,
    cached: int = 0,
    at: float | None = None,
    team: str = TEAM,
) -> None:
    assert harness.bot is not None
    await harness.bot.store.record_usage(
        UsageRecord(
            team_id=team,
            channel_id=channel,
            user_id=user,
            answer_id=None,
            model="mistral-large-2512",
            persona=None,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            cost=cost,
            at=time.time() if at is None else at,
        )
    )


async def seed(harness: Harness) -> None:
    await record(harness, "U0ADA", ENG, cost=0.25, prompt=10_000, completion=2_000, cached=4_000)
    await record(harness, "U0ADA", SALES, cost=0.01)
    await record(harness, "U0BOB", ENG, cost=1.5, prompt=30_000, completion=6_000)
    await record(harness, "U0BOB", "D0BOB", cost=0.5)
    await record(harness, "U0ADA", ENG, cost=100.0, at=month_start(time.time()) - 1)  # last month
    await record(harness, "U0ADA", ENG, cost=50.0, team="T0OTHER")  # another workspace


async def usage(harness: Harness, user: str, channel: str = ENG) -> str:
    ack = await harness.command("/usage", "", user=user, channel=channel)
    assert ack["response_type"] == "ephemeral"
    return ack["text"]


async def test_a_person_sees_their_own_usage_this_month_and_nothing_else(harness: Harness) -> None:
    await harness.start(BOT_ADMINS="U0BOB")
    await seed(harness)
    text = await usage(harness, "U0ADA")
    label = month_label(time.time())
    assert text == (
        f"*Your usage in {label}* (UTC): 2 answers, 13,200 tokens, $0.26\n"
        "Tokens: 11,000 in (4,000 of them cached), 2,200 out."
    )
    # Nothing is posted, and the model is not asked.
    assert not harness.slack.calls_to("chat.postMessage") and harness.mistral.requests == []


async def test_with_no_usage_yet(harness: Harness) -> None:
    await harness.start()
    text = await usage(harness, "U0ADA")
    assert text == f"*Your usage in {month_label(time.time())}* (UTC): no answers yet."


async def test_today_is_shown_against_the_daily_quota(harness: Harness) -> None:
    await harness.start(USER_DAILY_TOKENS="20000")
    await seed(harness)
    text = await usage(harness, "U0ADA")
    assert "*Today*: 13,200 of your 20,000 daily tokens (66%); the count restarts at 00:00 UTC." in text


async def test_an_admin_also_sees_the_channel_and_the_workspace(harness: Harness) -> None:
    await harness.start(BOT_ADMINS="U0ADA,U0CAROL", WORKSPACE_MONTHLY_BUDGET="10")
    await seed(harness)
    text = await usage(harness, "U0ADA", ENG)
    label = month_label(time.time())
    mine, report = text.split("\n\n")
    assert mine.startswith(f"*Your usage in {label}* (UTC): 2 answers")
    assert report == (
        f"*This channel in {label}*: 2 answers, 48,000 tokens, $1.75\n"
        "_Top people here_\n"
        "• <@U0BOB>: 1 answer, 36,000 tokens, $1.50\n"
        "• <@U0ADA>: 1 answer, 12,000 tokens, $0.25\n"
        f"*The workspace in {label}*: 4 answers, 50,400 tokens, $2.26, of its $10.00 monthly budget (23%)\n"
        "_Top people_\n"
        "• <@U0BOB>: 2 answers, 37,200 tokens, $2.00\n"
        "• <@U0ADA>: 2 answers, 13,200 tokens, $0.26\n"
        "_Top channels_\n"
        "• <#C0ENG>: 2 answers, 48,000 tokens, $1.75\n"
        "• a DM: 1 answer, 1,200 tokens, $0.50\n"
        "• <#C0SALES>: 1 answer, 1,200 tokens, $0.0100"
    )


async def test_an_admin_in_a_dm_sees_the_workspace_without_a_channel_section(harness: Harness) -> None:
    await harness.start(BOT_ADMINS="U0ADA")
    await seed(harness)
    text = await usage(harness, "U0ADA", "D0ADA")
    assert "This channel" not in text and "*The workspace in" in text and "_Top channels_" in text


async def test_the_old_persona_admins_setting_still_names_admins(harness: Harness) -> None:
    await harness.start(PERSONA_ADMINS="U0ADA")
    await seed(harness)
    assert "*The workspace in" in await usage(harness, "U0ADA")
    assert "*The workspace in" not in await usage(harness, "U0BOB")


async def test_without_admins_nobody_sees_other_peoples_figures(harness: Harness) -> None:
    await harness.start()
    await seed(harness)
    for user in ("U0ADA", "U0BOB"):
        text = await usage(harness, user)
        assert "workspace" not in text and "<@" not in text


async def test_a_forgotten_person_shows_as_forgotten(harness: Harness) -> None:
    await harness.start(BOT_ADMINS="U0ADA")
    await record(harness, None, ENG, cost=3.0)
    text = await usage(harness, "U0ADA")
    assert "• (forgotten): 1 answer, 1,200 tokens, $3.00" in text
