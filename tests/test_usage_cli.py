"""`python -m bot usage` and `forget` (bot.admin_cli) against real stores: SQLite and the machine's PostgreSQL.

These tests are synchronous: each admin command runs its own event loop, as it does from the command line.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.admin_cli import run_forget, run_usage
from bot.config import Settings
from bot.core.personas import Persona
from bot.storage import NewMessage, ThreadKey, UsageRecord, open_store
from tests.storage import conftest as storage_fixtures

T = TypeVar("T")

# PostgreSQL in a schema of its own per test (skipped without a server, except under CI).
database_url = storage_fixtures.database_url

NOW = 1_790_000_000.0  # 2026-09-21, a fixed "now" for --since
DAY = 86_400.0


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    base = {"slack_bot_token": "xoxb-test", "mistral_api_key": "test"}
    if request.param == "postgres":
        return Settings(**base, database_url=request.getfixturevalue("database_url"))
    return Settings(**base, database_path=str(tmp_path / "bot.db"))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def record(
    user: str | None, channel: str, *, model: str = "mistral-large-2512", persona: str | None = None, **figures: Any
) -> UsageRecord:
    values = {"prompt_tokens": 1000, "completion_tokens": 200, "cached_tokens": 0, "cost": 0.01, "at": NOW - 3600}
    values.update(figures)
    return UsageRecord(
        team_id="T1", channel_id=channel, user_id=user, answer_id=None, model=model, persona=persona, **values
    )


async def _seed(settings: Settings, records: list[UsageRecord], messages: list[tuple[str, str, str]] = ()) -> None:
    store = await open_store(settings)
    try:
        for r in records:
            await store.record_usage(r)
        # (channel, thread_ts, user): a question in a thread of its own
        for channel, ts, user in messages:
            key = ThreadKey("T1", channel, ts)
            await store.claim_turn(key, Persona("be kind"), NewMessage("user", f"hi from {user}", ts, user))
    finally:
        await store.close()


def seed(settings: Settings, records: list[UsageRecord], messages: list[tuple[str, str, str]] = ()) -> None:
    run(_seed(settings, records, list(messages)))


RECORDS = [
    record("U0ADA", "C0ENG", cost=1.5, prompt_tokens=40_000, completion_tokens=5_000, cached_tokens=10_000),
    record("U0ADA", "C0ENG", cost=0.5, prompt_tokens=10_000, completion_tokens=1_000, persona="terse"),
    record("U0BOB", "C0SALES", cost=0.004, model="mistral-small-2506"),
    record("U0BOB", "C0SALES", cost=9.0, at=NOW - 40 * DAY),  # before the window
]


def usage(settings: Settings, since: str = "30d", by: str = "user", fmt: str = "table") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_usage(settings, since=since, by=by, fmt=fmt, out=out, err=err, now=NOW)
    return status, out.getvalue(), err.getvalue()


def test_usage_by_user_as_a_table(settings: Settings) -> None:
    seed(settings, RECORDS)
    status, out, err = usage(settings)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Usage since 2026-08-22 14:13 UTC (the last 30d), by user, costs in USD:"
    assert lines[2].split() == ["user", "answers", "prompt", "cached", "completion", "tokens", "cost"]
    assert lines[4].split() == ["U0ADA", "2", "50,000", "10,000", "6,000", "56,000", "$2.00"]
    assert lines[5].split() == ["U0BOB", "1", "1,000", "0", "200", "1,200", "$0.0040"]
    assert lines[-1].split() == ["total", "3", "51,000", "10,000", "6,200", "57,200", "$2.00"]


@pytest.mark.parametrize(
    "by,keys",
    [
        ("channel", ["C0ENG", "C0SALES"]),
        ("model", ["mistral-large-2512", "mistral-small-2506"]),
        ("persona", ["default", "terse"]),  # the default persona is stored as None
    ],
)
def test_usage_by_other_keys(settings: Settings, by: str, keys: list[str]) -> None:
    seed(settings, RECORDS)
    status, out, _ = usage(settings, by=by)
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[4:-2]] == keys


def test_usage_as_csv(settings: Settings) -> None:
    seed(settings, RECORDS)
    status, out, _ = usage(settings, since="90d", by="channel", fmt="csv")
    assert status == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["channel", "answers", "prompt_tokens", "cached_tokens", "completion_tokens", "tokens", "cost"],
        ["C0SALES", "2", "2000", "0", "400", "2400", "9.004000"],  # the older record is inside 90 days
        ["C0ENG", "2", "50000", "10000", "6000", "56000", "2.000000"],
    ]


def test_usage_with_nothing_recorded(settings: Settings) -> None:
    status, out, _ = usage(settings, since="12h")
    assert (status, out) == (0, "No answers since 2026-09-21 02:13 UTC.\n")
    status, out, _ = usage(settings, fmt="csv")
    assert (status, out) == (0, "user,answers,prompt_tokens,cached_tokens,completion_tokens,tokens,cost\n")


@pytest.mark.parametrize(
    "since,by,fmt,problem",
    [
        ("30", "user", "table", "--since '30'"),
        ("thirty days", "user", "table", "--since"),
        ("30d", "team", "table", "--by 'team': expected one of user, channel, model, persona"),
        ("30d", "user", "json", "--format 'json': expected one of table, csv"),
    ],
)
def test_usage_refuses_bad_input_before_opening_the_store(
    tmp_path: Path, since: str, by: str, fmt: str, problem: str
) -> None:
    settings = Settings(slack_bot_token="xoxb-test", mistral_api_key="test", database_path=str(tmp_path / "a.db"))
    status, out, err = usage(settings, since=since, by=by, fmt=fmt)
    assert (status, out) == (2, "")
    assert err.startswith("error: ") and problem in err and err.count("\n") == 1
    assert not (tmp_path / "a.db").exists()


def test_forget_user_deletes_their_messages_and_keeps_the_figures_unnamed(settings: Settings) -> None:
    seed(
        settings,
        RECORDS,
        messages=[
            ("C0ENG", "1790000000.000100", "U0ADA"),
            ("C0ENG", "1790000000.000200", "U0ADA"),
            ("C0ENG", "1790000000.000300", "U0BOB"),
        ],
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_forget(settings, user="U0ADA", channel=None, out=out, err=err) == 0
    assert err.getvalue() == ""
    assert out.getvalue().startswith("Deleted ")
    assert " stored messages of U0ADA (their usage figures stay, no longer naming them).\n" in out.getvalue()
    deleted = int(out.getvalue().split()[1])
    assert deleted >= 2  # the two questions (and their empty answers, where the store counts them)
    status, table_text, _ = usage(settings)
    assert status == 0
    keys = [line.split()[0] for line in table_text.splitlines()[4:-2]]
    assert keys == ["(forgotten)", "U0BOB"]  # the figures stay, no longer naming her
    # A second request finds nothing left.
    out = io.StringIO()
    assert run_forget(settings, user="U0ADA", channel=None, out=out) == 0
    assert out.getvalue() == "Deleted 0 stored messages of U0ADA (their usage figures stay, no longer naming them).\n"


def test_forget_channel(settings: Settings) -> None:
    seed(
        settings, RECORDS, messages=[("C0SALES", "1790000000.000100", "U0BOB"), ("C0ENG", "1790000000.000200", "U0ADA")]
    )
    out = io.StringIO()
    assert run_forget(settings, user=None, channel="C0SALES", out=out) == 0
    assert out.getvalue().startswith("Deleted ")
    assert "stored message" in out.getvalue() and "of C0SALES (" in out.getvalue()
    assert int(out.getvalue().split()[1]) >= 1
    out = io.StringIO()
    assert run_forget(settings, user=None, channel="C0SALES", out=out) == 0
    assert out.getvalue().startswith("Deleted 0 stored messages of C0SALES")
    # The other channel keeps its messages.
    out = io.StringIO()
    assert run_forget(settings, user=None, channel="C0ENG", out=out) == 0
    assert int(out.getvalue().split()[1]) >= 1


@pytest.mark.parametrize(
    "user,channel,problem",
    [
        (None, None, "name exactly one of --user U… or --channel C…"),
        ("U0ADA", "C0ENG", "name exactly one of --user U… or --channel C…"),
        ("C0ENG", None, "--user 'C0ENG' does not look like a Slack user ID"),
        ("u0ada", None, "--user 'u0ada' does not look like a Slack user ID"),
        ("<@U0ADA>", None, "does not look like a Slack user ID"),
        ("", None, "does not look like a Slack user ID"),
        (None, "U0ADA", "--channel 'U0ADA' does not look like a Slack channel ID"),
        (None, "#general", "does not look like a Slack channel ID"),
        (None, "C0ENG; DROP TABLE messages", "does not look like a Slack channel ID"),
    ],
)
def test_forget_refuses_bad_input_before_opening_the_store(
    tmp_path: Path, user: str | None, channel: str | None, problem: str
) -> None:
    settings = Settings(slack_bot_token="xoxb-test", mistral_api_key="test", database_path=str(tmp_path / "a.db"))
    out, err = io.StringIO(), io.StringIO()
    assert run_forget(settings, user=user, channel=channel, out=out, err=err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith("error: ") and problem in err.getvalue() and err.getvalue().count("\n") == 1
    assert not (tmp_path / "a.db").exists()


@pytest.mark.parametrize("user,channel", [("W0ADA", None), (None, "G0PRIV"), (None, "D0ADA")])
def test_forget_accepts_every_kind_of_id(tmp_path: Path, user: str | None, channel: str | None) -> None:
    settings = Settings(slack_bot_token="xoxb-test", mistral_api_key="test", database_path=str(tmp_path / "a.db"))
    out = io.StringIO()
    assert run_forget(settings, user=user, channel=channel, out=out) == 0
    assert out.getvalue().startswith("Deleted 0 stored messages of ")


def test_a_database_out_of_reach_is_one_line_and_status_1() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    settings = Settings(
        slack_bot_token="xoxb-test", mistral_api_key="test", database_url="postgresql://postgres@127.0.0.1:1/test"
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_usage(settings, since="30d", by="user", fmt="table", out=out, err=err) == 1
    assert run_forget(settings, user="U0ADA", channel=None, out=out, err=err) == 1
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
