"""Running the bot: Slack's word on the tokens, Socket Mode or HTTP, recovery, and a graceful stop.

Start-up asks Slack about each token before it goes on: a token Slack refuses stops the bot with one line that
names the setting (`StartupError`); a Slack out of reach (connection refused, 5xx, rate limits) is retried with
backoff, and the log says so. SIGTERM and SIGINT stop the bot in every state: every wait of start-up gives way
to them, and once it serves they stop new events and let answers in flight finish.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.app import Bot, create_bot
from bot.config import Settings
from bot.core.retry import backoff_delay, parse_retry_after
from bot.http import start_metrics_server, web_app
from bot.retention import keep_retention
from bot.slack.api import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")
Ready = Callable[[Bot], None]

# `ok: false` errors that say Slack is struggling, not that it refuses: worth another try at start-up.
STARTUP_RETRIES = TRANSIENT_ERRORS | {"ratelimited"}

BOT_TOKEN_HELP = "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page"
APP_TOKEN_HELP = (
    "generate an app-level token with the connections:write scope (Basic Information → App-Level Tokens), "
    "or leave SLACK_APP_TOKEN unset to run in HTTP mode"
)


class StartupError(Exception):
    """Start-up cannot go on, and retrying cannot help; the message names the setting, never its value."""


class _Stopped(Exception):
    """The stop signal came while start-up was still waiting."""


async def serve(settings: Settings, stop: asyncio.Event, on_ready: Ready | None = None) -> None:
    """Run until `stop` is set; then stop taking events, let answers finish, and close everything."""
    try:
        identity = await _unless_stopped(_bot_identity(settings), stop)
    except _Stopped:
        log.info("stopped before Slack could be reached")
        return
    bot = await create_bot(settings, identity)
    # While the bot serves: leases renewed (until the end) and lapsed answers taken over (until the stop);
    # old messages deleted, where RETENTION_DAYS says so.
    chores: list[asyncio.Task[None]] = []
    try:
        # Answers the last process left half-written (it was killed) are continued, or marked if too old.
        await _unless_stopped(bot.takeover.sweep(), stop)
        chores.append(asyncio.create_task(bot.takeover.run(stop), name="leases"))
        if settings.retention_days is not None:
            chores.append(
                asyncio.create_task(keep_retention(bot.store, settings.retention_days, stop), name="retention")
            )
        if settings.socket_mode:
            await _socket_mode(bot, settings, stop, on_ready)
        else:
            await _http_mode(bot, settings, stop, on_ready)
    except _Stopped:
        log.info("stopped during start-up")
    finally:
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        await bot.close()


async def _socket_mode(bot: Bot, settings: Settings, stop: asyncio.Event, on_ready: Ready | None) -> None:
    assert settings.slack_app_token is not None
    # Socket Mode has no web server: with METRICS_PORT, a small one serves /metrics and /healthz.
    probes = await _metrics_server(bot, settings.metrics_port) if settings.metrics_port is not None else None
    try:
        # Its own logger, so the SDK's lines say where they come from (by default they carry Bolt's name).
        handler = AsyncSocketModeHandler(
            bot.app, settings.slack_app_token, logger=logging.getLogger("slack_sdk.socket_mode")
        )
        try:
            # The app token is checked here, before the SDK's connection loop, which retries a refused token forever.
            handler.client.wss_uri = await _unless_stopped(_socket_url(settings), stop)
            await _unless_stopped(handler.connect_async(), stop)
            log.info("connected to Slack in Socket Mode")
            if on_ready:
                on_ready(bot)
            await stop.wait()
            log.info("stopping: no new events; finishing answers in flight")
        finally:
            await handler.close_async()  # Slack redelivers what it cannot give us to another instance
        await bot.conversations.drain(settings.shutdown_grace)
    finally:
        if probes is not None:
            await probes.cleanup()


async def _metrics_server(bot: Bot, port: int) -> web.AppRunner:
    try:
        runner = await start_metrics_server(port, metrics=bot.metrics, ping=bot.store.ping)
    except OSError as exc:
        raise StartupError(f"METRICS_PORT: cannot listen on 0.0.0.0:{port} ({exc.strerror or exc})") from None
    log.info("serving /metrics and /healthz on 0.0.0.0:%d", port)
    return runner


async def _http_mode(bot: Bot, settings: Settings, stop: asyncio.Event, on_ready: Ready | None) -> None:
    application = web_app(
        bot.app, signing_secret=settings.slack_signing_secret or "", ping=bot.store.ping, metrics=bot.metrics
    )
    # No access log: a line per Slack event says nothing the bot's own lines (with their ids) do not.
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", settings.port)
    try:
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"PORT: cannot listen on 0.0.0.0:{settings.port} ({exc.strerror or exc})") from None
        log.info("listening for Slack on 0.0.0.0:%d/slack/events", settings.port)
        if on_ready:
            on_ready(bot)
        await stop.wait()
        log.info("stopping: no new events; finishing answers in flight")
        await site.stop()
        await bot.conversations.drain(settings.shutdown_grace)
    finally:
        await runner.cleanup()


# asking Slack at start-up ---------------------------------------------------------------------------------


async def _bot_identity(settings: Settings) -> AuthorizeResult:
    """`auth.test` with the bot token: who the bot is, kept for every event (Bolt asks no more)."""
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    response = await _ask_slack("auth.test", client.auth_test, setting="SLACK_BOT_TOKEN", help=BOT_TOKEN_HELP)
    identity = AuthorizeResult.from_auth_test_response(
        bot_token=settings.slack_bot_token,
        bot_scopes=response.headers.get("x-oauth-scopes"),
        auth_test_response=response,
    )
    log.info("Slack knows the bot as %s (%s) in %s", identity.user, identity.bot_user_id, identity.team_id)
    return identity


async def _socket_url(settings: Settings) -> str:
    """`apps.connections.open` with the app token: the websocket URL for Socket Mode."""
    client = AsyncWebClient(base_url=settings.slack_api_url)
    app_token = settings.slack_app_token

    async def connections_open() -> AsyncSlackResponse:
        return await client.apps_connections_open(app_token=app_token or "")

    response = await _ask_slack(
        "apps.connections.open", connections_open, setting="SLACK_APP_TOKEN", help=APP_TOKEN_HELP
    )
    return str(response["url"])


async def _ask_slack(
    method: str, call: Callable[[], Awaitable[AsyncSlackResponse]], *, setting: str, help: str
) -> AsyncSlackResponse:
    """Call Slack until it answers: a refusal is a `StartupError` naming `setting`; trouble is retried."""
    attempt = 0
    while True:
        attempt += 1
        retry_after = None
        try:
            return await call()
        except SlackApiError as exc:
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            status = exc.response.status_code
            if status < 500 and status != 429 and error not in STARTUP_RETRIES:
                raise StartupError(f"{setting} was refused by Slack ({error or f'HTTP {status}'}): {help}") from None
            problem = error or f"HTTP {status}"
            retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
        delay = max(backoff_delay(attempt, retry_after=retry_after), 1.0)
        log.warning("Slack is out of reach (%s: %s); retrying in %.0f s", method, problem, delay)
        await asyncio.sleep(delay)


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """`work`'s result; when `stop` is set first, `work` is cancelled and `_Stopped` raised."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise _Stopped
    return task.result()


def run(settings: Settings) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is built (Linux, macOS), else asyncio's own.

    Every answer is mostly waiting: about a hundred socket reads, timers and task wake-ups. uvloop does that
    bookkeeping in C; measured on the benchmark it takes about 38% off the bot's instructions per answer.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
