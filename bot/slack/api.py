"""Slack's Web API, as the bot calls it: paced per workspace, with errors the caller can act on.

Every call waits for a slot from its workspace's `Pacer`. Slack's answers become one of three outcomes:
the response data; `RateLimited` (a 429, already taught to the pacer); or `SlackCallError` with Slack's
error code, marked `transient` when trying again may help (5xx, `internal_error`, a dropped connection).
Urgent calls (a first sign of life, a final text, a note) retry transient failures a few times with
backoff; intermediate calls never do, since the next update carries fresher text anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.retry import backoff_delay, parse_retry_after
from bot.slack.pacer import Clock, Pacer, SharedCalls

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

# Slack's error codes that say "this time", not "never" (its docs list them for every method).
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "request_timeout", "service_unavailable"})
# How often an urgent call is tried again after a transient failure, and for how long at most.
TRANSIENT_RETRIES = 3
TRANSIENT_BUDGET = 15.0
# A Web API call that takes longer than this is treated as a transient failure.
CALL_TIMEOUT = 20.0


class RateLimited(Exception):
    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"{key} rate limited for {retry_after:g}s")
        self.retry_after = retry_after


class SlackCallError(Exception):
    """Slack refused a call; `error` is Slack's code (`not_in_channel`, `msg_too_long`, `http_503`...)."""

    def __init__(self, method: str, error: str, *, transient: bool = False) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.transient = transient


Priority = Callable[[], float]


def _no_priority() -> float:
    return 0.0


class SlackApi:
    """Web API calls for every workspace the bot serves, each within its workspace's `Pacer`."""

    def __init__(
        self,
        client: AsyncWebClient,
        clock: Clock = time.monotonic,
        *,
        shared: SharedCalls | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`shared`: the rate budget the bot's replicas share (PostgreSQL); None paces within this process.
        `metrics` counts every call's result, and reads the pacers' queues at each scrape."""
        self.client = client
        self._clock = clock
        self._shared = shared
        self._pacers: dict[str, Pacer] = {}
        self._metrics = metrics
        if metrics is not None:
            metrics.watch_pacers(self.waiting)

    def pacer(self, team_id: str) -> Pacer:
        if team_id not in self._pacers:
            self._pacers[team_id] = Pacer(clock=self._clock, shared=self._shared, team_id=team_id)
        return self._pacers[team_id]

    def waiting(self) -> int:
        """Calls queued for a slot, over every workspace."""
        return sum(pacer.waiting() for pacer in list(self._pacers.values()))

    async def call(
        self,
        team_id: str,
        method: str,
        *,
        scope: str | None = None,
        urgent: bool = True,
        priority: Priority = _no_priority,
        retry_rate_limited: bool = True,
        slot_held: bool = False,
        **payload: Any,
    ) -> dict[str, Any]:
        """One API call, waiting for its slot first (`slot_held`: the caller already has it).

        With `retry_rate_limited` a 429 waits out Retry-After and sends the same payload again. Urgent calls
        also retry transient failures, a few times within `TRANSIENT_BUDGET`.
        """
        key = f"{method}#{scope}" if scope else method
        pacer = self.pacer(team_id)
        deadline = self._clock() + TRANSIENT_BUDGET
        failures = 0
        while True:
            if not slot_held:
                await pacer.acquire(key, urgent=urgent, priority=priority)
            slot_held = False
            try:
                return await self._send(method, payload)
            except RateLimited as exc:
                await pacer.rate_limited(key, exc.retry_after)
                if not retry_rate_limited:
                    raise RateLimited(key, exc.retry_after) from None
            except SlackCallError as exc:
                failures += 1
                delay = backoff_delay(failures)
                if not (exc.transient and urgent and failures <= TRANSIENT_RETRIES):
                    raise
                if self._clock() + delay > deadline:
                    raise
                log.warning("Slack %s failed (%s); trying again in %.1fs", method, exc.error, delay)
                await asyncio.sleep(delay)

    async def _send(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                response = await self.client.api_call(method, json=payload)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                self._count(method, "ratelimited")
                retry_after = parse_retry_after(exc.response.headers.get("Retry-After")) or 1.0
                raise RateLimited(method, retry_after) from None
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = data.get("error")
            if status >= 500 or not isinstance(error, str):
                error, transient = str(error or f"http_{status}"), True
            else:
                transient = error in TRANSIENT_ERRORS
            self._count(method, error)
            # Raised, never kept in a local: a frame holding its own exception is a reference cycle.
            raise SlackCallError(method, error, transient=transient) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._count(method, "unreachable")
            raise SlackCallError(method, f"unreachable: {type(exc).__name__}", transient=True) from None
        self._count(method, "")
        return dict(response.data) if isinstance(response.data, dict) else {}

    def _count(self, method: str, error: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_call(method, error)

    # the calls every surface makes ------------------------------------------------------------------

    async def post(
        self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """chat.postMessage; returns Slack's data (`channel` and `ts` of the new message)."""
        return await self.call(
            team_id,
            "chat.postMessage",
            scope=channel,
            channel=channel,
            thread_ts=thread_ts,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )

    async def update(
        self, team_id: str, channel: str, ts: str, text: str, *, blocks: Sequence[dict[str, Any]] = ()
    ) -> None:
        """chat.update; `blocks` always sent, since Slack keeps a message's blocks when they are left out, and
        shows them rather than `text` (no blocks: the answer's old text and controls give way to `text`)."""
        await self.call(team_id, "chat.update", channel=channel, ts=ts, text=text, blocks=list(blocks))

    async def delete(self, team_id: str, channel: str, ts: str) -> bool:
        """Remove one of the bot's messages; False (logged) when Slack would not."""
        try:
            await self.call(team_id, "chat.delete", channel=channel, ts=ts)
        except SlackCallError as exc:
            log.warning("could not delete message %s in %s: %s", ts, channel, exc.error)
            return False
        return True

    async def ephemeral(self, team_id: str, channel: str, user: str, text: str, thread_ts: str | None = None) -> bool:
        """A private note; False when Slack would not take it (the user is told nothing worse)."""
        try:
            await self.call(team_id, "chat.postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts)
        except (SlackCallError, RateLimited) as exc:
            log.warning("could not send a private note to %s in %s: %s", user, channel, exc)
            return False
        return True
