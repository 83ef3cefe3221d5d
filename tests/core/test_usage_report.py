from __future__ import annotations

import csv
import io

import pytest

from bot.core.quotas import Limits
from bot.core.usage_report import (
    UsageRow,
    admin_summary,
    csv_text,
    label,
    mention,
    parse_since,
    personal_summary,
    table,
)

Row = UsageRow  # the store's rows

ADA = Row("U0ADA", answers=12, prompt_tokens=30_000, completion_tokens=4_567, cached_tokens=10_000, cost=1.2345)
BOB = Row("U0BOB", answers=1, prompt_tokens=800, completion_tokens=200, cost=0.0012)
GONE = Row(None, answers=3, prompt_tokens=100, completion_tokens=50, cost=0.0)
NOTHING = Row(None)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("30d", 30 * 86_400),
        ("12h", 12 * 3600),
        ("90m", 90 * 60),
        ("2w", 14 * 86_400),
        (" 7D ", 7 * 86_400),
        ("1 h", 3600),
    ],
)
def test_parse_since(text: str, seconds: float) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-1d", "1.5d", "3y", "30 days", "1d2h", "30s"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(text)


@pytest.mark.parametrize(
    "by,key,plain,slack",
    [
        ("user", "U0ADA", "U0ADA", "<@U0ADA>"),
        ("user", None, "(forgotten)", "(forgotten)"),
        ("channel", "C0ENG", "C0ENG", "<#C0ENG>"),
        ("channel", "D0ADA", "D0ADA", "a DM"),
        ("channel", None, "(forgotten)", "(forgotten)"),
        ("persona", "terse", "terse", "`terse`"),
        ("persona", None, "default", "default"),
        ("model", "mistral-large-2512", "mistral-large-2512", "`mistral-large-2512`"),
        ("model", None, "(unknown)", "(unknown)"),
    ],
)
def test_keys(by: str, key: str | None, plain: str, slack: str) -> None:
    assert label(by, key) == plain
    assert mention(by, key) == slack


def test_table_aligns_columns_and_adds_a_total() -> None:
    assert table([ADA, BOB, GONE], "user", "USD") == (
        "user         answers  prompt  cached  completion  tokens     cost\n"
        "-----------  -------  ------  ------  ----------  ------  -------\n"
        "U0ADA             12  30,000  10,000       4,567  34,567    $1.23\n"
        "U0BOB              1     800       0         200   1,000  $0.0012\n"
        "(forgotten)        3     100       0          50     150    $0.00\n"
        "-----------  -------  ------  ------  ----------  ------  -------\n"
        "total             16  30,900  10,000       4,817  35,717    $1.24\n"
    )


def test_table_columns_line_up() -> None:
    lines = table([ADA, BOB, GONE], "persona", "USD").splitlines()
    widths = {len(line) for line in lines}
    assert len(widths) == 1  # every line as wide: the numbers are right-aligned
    assert lines[0].split() == ["persona", "answers", "prompt", "cached", "completion", "tokens", "cost"]


def test_an_empty_table_still_has_its_header_and_a_zero_total() -> None:
    lines = table([], "channel", "USD").splitlines()
    assert lines[0].split()[0] == "channel"
    assert lines[-1].split() == ["total", "0", "0", "0", "0", "0", "$0.00"]


def test_csv_has_a_header_raw_ids_and_full_precision() -> None:
    rows = list(csv.reader(io.StringIO(csv_text([ADA, GONE], "user"))))
    assert rows == [
        ["user", "answers", "prompt_tokens", "cached_tokens", "completion_tokens", "tokens", "cost"],
        ["U0ADA", "12", "30000", "10000", "4567", "34567", "1.234500"],
        ["", "3", "100", "0", "50", "150", "0.000000"],
    ]
    assert csv_text([], "model") == "model,answers,prompt_tokens,cached_tokens,completion_tokens,tokens,cost\n"


def test_csv_quotes_keys_that_need_it() -> None:
    text = csv_text([Row('a,"b"', answers=1)], "persona")
    assert list(csv.reader(io.StringIO(text)))[1][0] == 'a,"b"'


@pytest.mark.parametrize(
    "total,used,limits,expected",
    [
        (
            ADA,
            None,
            Limits(),
            "*Your usage in 2026-11* (UTC): 12 answers, 34,567 tokens, $1.23\n"
            "Tokens: 30,000 in (10,000 of them cached), 4,567 out.",
        ),
        (
            BOB,
            1_000,
            Limits(user_daily_tokens=4_000),
            "*Your usage in 2026-11* (UTC): 1 answer, 1,000 tokens, $0.0012\n"
            "Tokens: 800 in, 200 out.\n"
            "*Today*: 1,000 of your 4,000 daily tokens (25%); the count restarts at 00:00 UTC.",
        ),
        (NOTHING, None, Limits(), "*Your usage in 2026-11* (UTC): no answers yet."),
        (
            NOTHING,
            0,
            Limits(user_daily_tokens=50_000),
            "*Your usage in 2026-11* (UTC): no answers yet.\n"
            "*Today*: 0 of your 50,000 daily tokens (0%); the count restarts at 00:00 UTC.",
        ),
        (
            NOTHING,
            0,
            Limits(user_daily_tokens=0),
            "*Your usage in 2026-11* (UTC): no answers yet.\n"
            "*Today*: 0 of your 0 daily tokens; the count restarts at 00:00 UTC.",
        ),
        (
            BOB,
            1_000,
            Limits(),
            "*Your usage in 2026-11* (UTC): 1 answer, 1,000 tokens, $0.0012\n"
            "Tokens: 800 in, 200 out.\n*Today*: 1,000 tokens.",
        ),
    ],
)
def test_personal_summary(total: Row, used: int | None, limits: Limits, expected: str) -> None:
    assert personal_summary(total, month_label="2026-11", currency="USD", daily_tokens_used=used, limits=limits) == (
        expected
    )


def test_admin_summary() -> None:
    channel = Row("C0ENG", answers=13, prompt_tokens=30_800, completion_tokens=4_767, cost=1.2357)
    workspace = Row(None, answers=16, prompt_tokens=30_900, completion_tokens=4_817, cost=1.2357)
    text = admin_summary(
        channel,
        [ADA, BOB],
        workspace,
        [ADA, GONE, BOB],
        [Row("C0ENG", answers=13, cost=1.2357), Row("D0ADA", answers=2, cost=0.0), Row(None, answers=1)],
        currency="USD",
        month_label="2026-11",
    )
    assert text == (
        "*This channel in 2026-11*: 13 answers, 35,567 tokens, $1.24\n"
        "_Top people here_\n"
        "• <@U0ADA>: 12 answers, 34,567 tokens, $1.23\n"
        "• <@U0BOB>: 1 answer, 1,000 tokens, $0.0012\n"
        "*The workspace in 2026-11*: 16 answers, 35,717 tokens, $1.24\n"
        "_Top people_\n"
        "• <@U0ADA>: 12 answers, 34,567 tokens, $1.23\n"
        "• (forgotten): 3 answers, 150 tokens, $0.00\n"
        "• <@U0BOB>: 1 answer, 1,000 tokens, $0.0012\n"
        "_Top channels_\n"
        "• <#C0ENG>: 13 answers, 0 tokens, $1.24\n"
        "• a DM: 2 answers, 0 tokens, $0.00\n"
        "• (forgotten): 1 answer, 0 tokens, $0.00"
    )


def test_admin_summary_without_a_channel_or_any_use() -> None:
    text = admin_summary(None, [], NOTHING, [], [], currency="USD", month_label="2026-11")
    assert text == "*The workspace in 2026-11*: 0 answers, 0 tokens, $0.00"


@pytest.mark.parametrize(
    "budget,line",
    [
        (None, "*The workspace in 2026-11*: 12 answers, 34,567 tokens, $1.23"),
        (10.0, "*The workspace in 2026-11*: 12 answers, 34,567 tokens, $1.23, of its $10.00 monthly budget (12%)"),
        (1.0, "*The workspace in 2026-11*: 12 answers, 34,567 tokens, $1.23, of its $1.00 monthly budget (123%)"),
    ],
)
def test_admin_summary_shows_the_share_of_the_budget(budget: float | None, line: str) -> None:
    text = admin_summary(None, [], ADA, [], [], currency="USD", month_label="2026-11", budget=budget)
    assert text == line
