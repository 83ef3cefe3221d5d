"""Usage figures as people read them: `/usage` in Slack (mrkdwn) and `python -m bot usage` (a table or CSV).

Rows are `UsageRow`s, the store's answer to its usage queries (defined here, as `bot.storage` takes its
`Persona` from `bot.core`). A key of None is a person or channel forgotten on request (their
figures stay, without their id), or the default persona.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.core.prices import money
from bot.core.quotas import Limits

UsageBy = Literal["user", "channel", "model", "persona"]
USAGE_BY: tuple[UsageBy, ...] = ("user", "channel", "model", "persona")

FORGOTTEN = "(forgotten)"
DEFAULT_PERSONA = "default"
UNKNOWN_MODEL = "(unknown)"

_SINCE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


@dataclass(frozen=True)
class UsageRow:
    """Usage summed over one key of a grouping, or over everything a filter selects (a total): the store's
    answer to a usage query, and what this module prints."""

    key: str | None  # the user, channel, model or persona summed (None: default persona, forgotten user, a total)
    answers: int = 0  # model calls counted
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def total_of(rows: Sequence[UsageRow]) -> UsageRow:
    return UsageRow(
        key=None,
        answers=sum(r.answers for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cached_tokens=sum(r.cached_tokens for r in rows),
        cost=sum(r.cost for r in rows),
    )


def parse_since(text: str) -> float:
    """`--since`: "90m", "12h", "30d", "2w" → seconds. ValueError otherwise (zero included)."""
    match = _SINCE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"--since {text!r}: expected a count and a unit (m, h, d or w), e.g. 30d or 12h")
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def label(by: str, key: str | None) -> str:
    """A key as plain text (the CLI's table)."""
    if key is not None:
        return key
    return {"persona": DEFAULT_PERSONA, "model": UNKNOWN_MODEL}.get(by, FORGOTTEN)


# the CLI ------------------------------------------------------------------------------------------------------

_NUMERIC = ("answers", "prompt", "cached", "completion", "tokens", "cost")


def _cells(first: str, row: UsageRow, currency: str) -> list[str]:
    return [
        first,
        f"{row.answers:,}",
        f"{row.prompt_tokens:,}",
        f"{row.cached_tokens:,}",
        f"{row.completion_tokens:,}",
        f"{row.tokens:,}",
        money(row.cost, currency),
    ]


def table(rows: Sequence[UsageRow], by: str, currency: str) -> str:
    """Aligned plain-text columns, one line per key, then a total line (the key column left-aligned)."""
    lines = [[by, *_NUMERIC]]
    lines += [_cells(label(by, r.key), r, currency) for r in rows]
    lines.append(_cells("total", total_of(rows), currency))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [render(cells) for cells in lines[1:-1]]
    return "\n".join([render(lines[0]), rule, *body, rule, render(lines[-1])]) + "\n"


def csv_text(rows: Sequence[UsageRow], by: str) -> str:
    """CSV for spreadsheets: raw ids (empty for a forgotten key or the default persona), full-precision costs."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([by, "answers", "prompt_tokens", "cached_tokens", "completion_tokens", "tokens", "cost"])
    for r in rows:
        writer.writerow(
            [
                r.key or "",
                r.answers,
                r.prompt_tokens,
                r.cached_tokens,
                r.completion_tokens,
                r.tokens,
                f"{r.cost:.6f}",
            ]
        )
    return buffer.getvalue()


# `/usage` in Slack ----------------------------------------------------------------------------------------------


def mention(by: str, key: str | None) -> str:
    """A key as Slack shows it: people and channels as links, which Slack names for each reader."""
    if key is None:
        return label(by, None)
    if by == "user":
        return f"<@{key}>"
    if by == "channel":
        return "a DM" if key.startswith("D") else f"<#{key}>"
    return f"`{key}`"


def figures(row: UsageRow, currency: str) -> str:
    answers = "1 answer" if row.answers == 1 else f"{row.answers:,} answers"
    return f"{answers}, {row.tokens:,} tokens, {money(row.cost, currency)}"


def _token_detail(row: UsageRow) -> str:
    cached = f" ({row.cached_tokens:,} of them cached)" if row.cached_tokens else ""
    return f"{row.prompt_tokens:,} in{cached}, {row.completion_tokens:,} out"


def personal_summary(
    total: UsageRow, *, month_label: str, currency: str, daily_tokens_used: int | None, limits: Limits
) -> str:
    """The person's own figures this month, and today's tokens against their daily quota when there is one."""
    if total.answers:
        lines = [
            f"*Your usage in {month_label}* (UTC): {figures(total, currency)}",
            f"Tokens: {_token_detail(total)}.",
        ]
    else:
        lines = [f"*Your usage in {month_label}* (UTC): no answers yet."]
    daily = limits.user_daily_tokens
    if daily is not None and daily_tokens_used is not None:
        share = f" ({daily_tokens_used / daily:.0%})" if daily > 0 else ""
        lines.append(
            f"*Today*: {daily_tokens_used:,} of your {daily:,} daily tokens{share}; the count restarts at 00:00 UTC."
        )
    elif daily_tokens_used is not None:
        lines.append(f"*Today*: {daily_tokens_used:,} tokens.")
    return "\n".join(lines)


def _top(title: str, by: str, rows: Sequence[UsageRow], currency: str) -> list[str]:
    if not rows:
        return []
    return [f"_{title}_", *(f"• {mention(by, r.key)}: {figures(r, currency)}" for r in rows)]


def admin_summary(
    channel_total: UsageRow | None,
    top_users_in_channel: Sequence[UsageRow],
    workspace_total: UsageRow,
    top_users: Sequence[UsageRow],
    top_channels: Sequence[UsageRow],
    *,
    currency: str,
    month_label: str,
    budget: float | None = None,
) -> str:
    """For admins: this channel's figures and top people, then the workspace's, with its top people and channels.

    `channel_total` None leaves the channel out (the command ran where a channel's figures make no sense);
    `budget` (WORKSPACE_MONTHLY_BUDGET) adds how much of it the workspace used.
    """
    lines: list[str] = []
    if channel_total is not None:
        lines.append(f"*This channel in {month_label}*: {figures(channel_total, currency)}")
        lines += _top("Top people here", "user", top_users_in_channel, currency)
    workspace = f"*The workspace in {month_label}*: {figures(workspace_total, currency)}"
    if budget is not None:
        share = f" ({workspace_total.cost / budget:.0%})" if budget > 0 else ""
        workspace += f", of its {money(budget, currency)} monthly budget{share}"
    lines.append(workspace)
    lines += _top("Top people", "user", top_users, currency)
    lines += _top("Top channels", "channel", top_channels, currency)
    return "\n".join(lines)
