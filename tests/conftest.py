"""Fixtures: the loopback fakes, and a harness that runs the real bot against them (HTTP or Socket Mode)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.config import load_settings
from bot.runtime import loop_factory, serve
from tests.fakes import mistral as fm
from tests.fakes import slack as fs


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Tests run on the event loop the bot runs on (uvloop where it is built)."""
    factory = loop_factory()
    return {"uvloop": factory} if factory is not None else {"asyncio": asyncio.new_event_loop}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy (tests wait on behaviour, never on wall time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.02)


class Harness:
    """Starts, stops and restarts the real bot (`bot.runtime.serve`) against the fakes."""

    def __init__(self, slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path, mode: str) -> None:
        self.slack = slack
        self.mistral = mistral
        self.tmp_path = tmp_path
        self.mode = mode
        self.port = free_port()
        self.bot: Bot | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.env: dict[str, str] = {}

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def base_env(self) -> dict[str, str]:
        env = {
            "SLACK_BOT_TOKEN": fs.BOT_TOKEN,
            "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "PORT": str(self.port),
            "MISTRAL_API_KEY": fm.API_KEY,
            "MISTRAL_BASE_URL": self.mistral.url,
            "DATABASE_URL": f"sqlite:///{self.tmp_path / 'bot.db'}",
            "PERSONAS_FILE": str(self.tmp_path / "personas.toml"),
            "MISTRAL_RETRY_BUDGET": "5",
            "SHUTDOWN_GRACE_SECONDS": "5",
            # Most tests read answers as chat.update renders them; test_streaming.py covers native and auto.
            "SLACK_STREAMING": "update",
        }
        if self.mode == "socket":
            env["SLACK_APP_TOKEN"] = fs.APP_TOKEN
        return env

    async def start(self, **env: str) -> Bot:
        self.env = {**self.base_env(), **env}
        settings = load_settings(self.env)
        ready: asyncio.Future[Bot] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(serve(settings, self._stop, on_ready=ready.set_result))
        done, _ = await asyncio.wait({ready, self._task}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            task, self._task = self._task, None
            task.result()  # raises what start-up raised
        self.bot = ready.result()
        if self.mode == "socket":
            await self.slack.socket_connected()
        return self.bot

    async def stop(self) -> None:
        if self._task is None:
            return
        assert self._stop is not None
        self._stop.set()
        await asyncio.wait_for(self._task, 30)
        self._task = None

    async def kill(self) -> None:
        """Like SIGKILL: the serving task dies at once; nothing gets to finish or clean up politely."""
        assert self._task is not None and self.bot is not None
        for task in list(self.bot.conversations._tasks):
            task.cancel()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def deliver(self, event: dict[str, Any], *, retry: int = 0) -> None:
        if self.mode == "socket":
            ack = await self.slack.deliver_socket(event, retry_attempt=retry)
            assert "envelope_id" in ack
        else:
            status, _ = await self.slack.deliver_http(self.events_url, event, retry_num=retry or None)
            assert status == 200, status

    async def interact(self, payload: dict[str, Any]) -> None:
        """Deliver a block action or a shortcut, as Slack does in this harness's mode; it must be acknowledged."""
        if self.mode == "socket":
            ack = await self.slack.deliver_interactive_socket(payload)
            assert "envelope_id" in ack
        else:
            status, _ = await self.slack.deliver_interactive_http(self.events_url, payload)
            assert status == 200, status

    async def command(self, command: str, text: str, *, user: str, channel: str) -> dict[str, Any]:
        """Run a slash command; returns the ack's payload (what the person sees at once)."""
        payload = self.slack.command(command, text, user=user, channel=channel)
        if self.mode == "socket":
            ack = await self.slack.send_envelope("slash_commands", payload)
            return ack.get("payload") or {}
        import json

        status, body = await self.slack.command_http(self.events_url, payload)
        assert status == 200, status
        return json.loads(body) if body else {}

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until the bot has no answer in flight (twice in a row, since Bolt hands events over async)."""
        assert self.bot is not None
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:
            if time.monotonic() > deadline:
                raise AssertionError("the bot did not settle")
            await asyncio.sleep(0.03)
            if self.bot.conversations._tasks:
                quiet = 0
                await asyncio.wait_for(self.bot.conversations.wait_idle(), max(deadline - time.monotonic(), 0.1))
            else:
                quiet += 1


@pytest.fixture
async def slack() -> AsyncIterator[fs.FakeSlack]:
    fake = fs.FakeSlack()
    fake.users = {"U0ADA": "Ada", "U0BOB": "Bob"}
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def mistral() -> AsyncIterator[fm.FakeMistral]:
    fake = fm.FakeMistral()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(params=["http", "socket"])
async def harness(
    request: pytest.FixtureRequest, slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = Harness(slack, mistral, tmp_path, request.param)
    yield h
    await h.stop()


@pytest.fixture
async def http_harness(slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(slack, mistral, tmp_path, "http")
    yield h
    await h.stop()
