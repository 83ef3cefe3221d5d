"""Admin commands of `python -m bot`: `usage` (who and what spent how much, as a table or CSV) and `forget` (delete
a person's or a channel's stored messages for a data request).

Each opens the store the bot uses (DATABASE_URL), queries it, prints, and closes it. Bad input is refused with
one line before the database is touched: exit status 2; a database that cannot be used: 1.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar, cast

from bot.config import Settings
from bot.core.prices import CURRENCY
from bot.core.usage_report import USAGE_BY, UsageBy, csv_text, parse_since, table
from bot.runtime import loop_factory
from bot.storage import StoreError, UsageRow, open_store

T = TypeVar("T")

FORMATS = ("table", "csv")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def run_usage(
    settings: Settings,
    *,
    since: str,
    by: str,
    fmt: str,
    out: TextIO,
    err: TextIO | None = None,
    now: float | None = None,
) -> int:
    """Print usage since `since` ("30d") grouped `by` user, channel, model or persona, across workspaces."""
    err = err or sys.stderr
    try:
        seconds = parse_since(since)
    except ValueError as exc:
        return _refuse(err, str(exc))
    if by not in USAGE_BY:
        return _refuse(err, f"--by {by!r}: expected one of {', '.join(USAGE_BY)}")
    if fmt not in FORMATS:
        return _refuse(err, f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    start = (time.time() if now is None else now) - seconds
    try:
        rows = _run(_usage(settings, cast(UsageBy, by), start))  # `by` is one of USAGE_BY, checked above
    except StoreError as exc:
        return _fail(err, str(exc))
    if fmt == "csv":
        out.write(csv_text(rows, by))
        return 0
    when = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not rows:
        out.write(f"No answers since {when}.\n")
        return 0
    out.write(f"Usage since {when} (the last {since.strip()}), by {by}, costs in {CURRENCY}:\n\n")
    out.write(table(rows, by, CURRENCY))
    return 0


def run_forget(
    settings: Settings, *, user: str | None, channel: str | None, out: TextIO, err: TextIO | None = None
) -> int:
    """Delete the stored messages of one person (`--user`) or one channel (`--channel`), in every workspace."""
    err = err or sys.stderr
    if (user is None) == (channel is None):
        return _refuse(err, "name exactly one of --user U… or --channel C…")
    if user is not None:
        target = user.strip()
        if not _USER_ID.match(target):
            return _refuse(err, f"--user {user!r} does not look like a Slack user ID (U… or W…)")
        whose = "their usage figures stay, no longer naming them"
    else:
        assert channel is not None
        target = channel.strip()
        if not _CHANNEL_ID.match(target):
            return _refuse(err, f"--channel {channel!r} does not look like a Slack channel ID (C…, G… or D…)")
        whose = "with its conversations and stored persona; its usage figures stay"
    try:
        deleted = _run(_forget(settings, user=user is not None, target=target))
    except StoreError as exc:
        return _fail(err, str(exc))
    messages = "stored message" if deleted == 1 else "stored messages"
    out.write(f"Deleted {deleted:,} {messages} of {target} ({whose}).\n")
    return 0


async def _usage(settings: Settings, by: UsageBy, since: float) -> list[UsageRow]:
    store = await open_store(settings)
    try:
        return await store.usage_by(by, since=since)
    finally:
        await store.close()


async def _forget(settings: Settings, *, user: bool, target: str) -> int:
    store = await open_store(settings)
    try:
        return await (store.forget_user(target) if user else store.forget_channel(target))
    finally:
        await store.close()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    # The bot's own event loop (uvloop where built), so the store's drivers run as they do in production.
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def _refuse(err: TextIO, problem: str) -> int:
    err.write(f"error: {problem}\n")
    return 2


def _fail(err: TextIO, problem: str) -> int:
    err.write(f"error: {problem}\n")
    return 1
