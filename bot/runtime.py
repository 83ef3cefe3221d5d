"""Running the bot: Socket Mode or HTTP, recovery at start, and a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import Bot, create_bot
from bot.config import Settings
from bot.http import web_app

log = logging.getLogger(__name__)


Ready = Callable[[Bot], None]


async def serve(settings: Settings, stop: asyncio.Event, on_ready: Ready | None = None) -> None:
    """Run until `stop` is set; then stop taking events, let answers finish, and close everything."""
    bot = await create_bot(settings)
    try:
        await bot.conversations.recover()
        if settings.socket_mode:
            await _socket_mode(bot, settings, stop, on_ready)
        else:
            await _http_mode(bot, settings, stop, on_ready)
    finally:
        await bot.close()


async def _socket_mode(bot: Bot, settings: Settings, stop: asyncio.Event, on_ready: Ready | None) -> None:
    handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token)
    await handler.connect_async()
    log.info("connected to Slack in Socket Mode")
    if on_ready:
        on_ready(bot)
    await stop.wait()
    log.info("stopping: no new events; finishing answers in flight")
    await handler.close_async()  # Slack redelivers what it cannot give us to another instance
    await bot.conversations.drain(settings.shutdown_grace)


async def _http_mode(bot: Bot, settings: Settings, stop: asyncio.Event, on_ready: Ready | None) -> None:
    runner = web.AppRunner(web_app(bot.app))
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", settings.port)
    await site.start()
    log.info("listening for Slack on 0.0.0.0:%d/slack/events", settings.port)
    if on_ready:
        on_ready(bot)
    try:
        await stop.wait()
        log.info("stopping: no new events; finishing answers in flight")
        await site.stop()
        await bot.conversations.drain(settings.shutdown_grace)
    finally:
        await runner.cleanup()


def run(settings: Settings) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
