"""Start-up as an operator meets it: the command line, `.env`, tokens Slack refuses, Slack out of reach, signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.conftest import Harness, free_port, until
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.slack import BOT_USER

CHANNEL = "C0START"
# Every variable the bot or Bolt might read: a test's process starts from an environment without them.
SETTINGS_PREFIXES = ("SLACK_", "MISTRAL_")
SETTINGS = {
    "PORT",
    "SYSTEM_PROMPT",
    "PERSONAS_FILE",
    "PERSONA_ADMINS",
    "BOT_ADMINS",
    "DATABASE_URL",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "METRICS_PORT",
    "ALLOWED_CHANNELS",
    "ALLOWED_USERS",
    "USER_DAILY_TOKENS",
    "WORKSPACE_MONTHLY_BUDGET",
    "MODEL_PRICES",
    "RETENTION_DAYS",
    "REDACT",
    "SHUTDOWN_GRACE_SECONDS",
}


def clean_environment(**env: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES) and k not in SETTINGS}
    return {**kept, **env}


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=clean_environment(**(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )


class BotProcess:
    """`python -m bot` as its own process, with its log read line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, env: dict[str, str], cwd: Path) -> BotProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=clean_environment(**env),
            cwd=cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float = 20) -> None:
        await until(lambda: any(text in line for line in self.lines), timeout, f"{text!r} in the log:\n{self.log}")

    async def exit_code(self, timeout: float = 20) -> int:
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"the bot did not stop within {timeout} s; its log:\n{self.log}") from None
        await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
async def processes() -> AsyncIterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for process in started:
        await process.kill()


async def start_process(processes: list[BotProcess], h: Harness, **env: str) -> BotProcess:
    process = await BotProcess.start({**h.base_env(), "LOG_LEVEL": "INFO", **env}, h.tmp_path)
    processes.append(process)
    return process


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/api/"


# the command line ---------------------------------------------------------------------------------------


def test_help_describes_the_command_line_and_starts_nothing(tmp_path: Path) -> None:
    shown = run_cli("--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage:") and "run" in shown.stdout and "--env-file" in shown.stdout
    assert shown.stderr == ""
    run_help = run_cli("run", "--help", cwd=tmp_path)
    assert run_help.returncode == 0 and run_help.stdout.startswith("usage:")


def test_an_unknown_command_is_refused_with_usage(tmp_path: Path) -> None:
    refused = run_cli("launch", cwd=tmp_path)
    assert refused.returncode == 2
    assert "usage:" in refused.stderr and "launch" in refused.stderr


def test_dotenv_is_read_from_the_working_directory_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxp-not-a-bot-token\nSLACK_SIGNING_SECRET=s3cret\nMISTRAL_API_KEY=k\nLOG_LEVEL=LOUD\n"
    )
    result = run_cli(cwd=tmp_path, env={"SLACK_BOT_TOKEN": "xoxb-from-the-environment"})
    assert result.returncode == 2
    # .env was read (its LOG_LEVEL is the problem), and the environment's bot token won over the file's.
    assert result.stderr.strip() == "configuration error: LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"


def test_an_explicit_env_file_that_does_not_exist_is_a_configuration_error(tmp_path: Path) -> None:
    result = run_cli("--env-file", "missing.env", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: --env-file missing.env: no such file"


# tokens Slack refuses: one clear line, a non-zero exit ---------------------------------------------------


async def test_a_refused_app_token_stops_socket_mode_at_once(
    http_harness: Harness, processes: list[BotProcess]
) -> None:
    process = await start_process(processes, http_harness, SLACK_APP_TOKEN="xapp-...")
    assert await process.exit_code() == 2
    assert "Traceback" not in process.log
    problems = [line for line in process.lines if "SLACK_APP_TOKEN" in line]
    assert len(problems) == 1 and "invalid_auth" in problems[0]


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "token_revoked"])
async def test_a_refused_bot_token_stops_start_up_at_once(
    http_harness: Harness, processes: list[BotProcess], error: str
) -> None:
    env = {}
    if error == "invalid_auth":
        env["SLACK_BOT_TOKEN"] = "xoxb-wrong-token"  # the fake refuses any other token with invalid_auth
    else:
        http_harness.slack.errors["auth.test"] = deque([error])
    process = await start_process(processes, http_harness, **env)
    assert await process.exit_code() == 2
    assert "Traceback" not in process.log
    problems = [line for line in process.lines if "SLACK_BOT_TOKEN" in line]
    assert len(problems) == 1 and error in problems[0]
    assert "xoxb-wrong-token" not in process.log


# a database file SQLite cannot use: one clear line, a non-zero exit ------------------------------------------


@pytest.mark.parametrize("content", [b"this is not a database, " * 200, b"SQLite format 3\x00" + b"\xff" * 4000])
async def test_a_sqlite_file_that_is_not_a_usable_database_stops_start_up_at_once(
    http_harness: Harness, processes: list[BotProcess], content: bytes
) -> None:
    path = http_harness.tmp_path / "broken.db"
    path.write_bytes(content)
    process = await start_process(processes, http_harness, DATABASE_URL=f"sqlite:///{path}")
    assert await process.exit_code() == 2  # and it exits: nothing of the database is left running
    assert "Traceback" not in process.log
    problems = [line for line in process.lines if "broken.db" in line]
    assert len(problems) == 1 and "DATABASE_URL" in problems[0]


# Slack out of reach: retried with backoff, said in the log, and a signal still stops the bot -------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_signal_stops_the_bot_while_it_retries_an_unreachable_slack(
    http_harness: Harness, processes: list[BotProcess], sig: signal.Signals, mode: str
) -> None:
    env = {"SLACK_API_URL": closed_port_url()}
    if mode == "socket":
        env["SLACK_APP_TOKEN"] = fs.APP_TOKEN
    process = await start_process(processes, http_harness, **env)
    await process.wait_for_line("retrying")
    assert "Traceback" not in process.log
    process.process.send_signal(sig)
    assert await process.exit_code(timeout=10) == 0


async def test_a_signal_stops_the_bot_while_socket_mode_cannot_connect(
    slack: fs.FakeSlack, http_harness: Harness, processes: list[BotProcess]
) -> None:
    slack.socket_unavailable = True
    process = await start_process(processes, http_harness, SLACK_APP_TOKEN=fs.APP_TOKEN)
    await until(lambda: slack.calls_to("apps.connections.open"), timeout=20, message="a Socket Mode connection")
    await asyncio.sleep(0.5)  # the websocket is refused: the bot is retrying
    process.process.send_signal(signal.SIGTERM)
    assert await process.exit_code(timeout=10) == 0
    assert "Traceback" not in process.log


async def test_slack_answering_5xx_at_start_is_retried_until_it_recovers(
    http_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = http_harness
    h.slack.unavailable = 503
    starting = asyncio.create_task(h.start())
    await until(lambda: "retrying" in caplog.text, message="a retry in the log")
    assert len(h.slack.calls_to("auth.test")) >= 1 and not starting.done()
    h.slack.unavailable = None
    await asyncio.wait_for(starting, 30)
    event = h.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> back?")
    await h.deliver(h.slack.as_mention(event))
    await h.settle()
    assert [r.text for r in h.slack.bot_replies(CHANNEL, event["ts"])] == ["You said: [Ada] back?"]


async def test_slack_unreachable_at_start_then_reachable_starts_the_bot(
    mistral: fm.FakeMistral, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slack = fs.FakeSlack()
    port = free_port()
    h = Harness(slack, mistral, tmp_path, "socket")
    h.slack.url = f"http://127.0.0.1:{port}"  # nothing listens there yet
    starting = asyncio.create_task(h.start())
    try:
        await until(lambda: "retrying" in caplog.text, message="a retry in the log")
        await slack.start(port)
        await asyncio.wait_for(starting, 30)
    finally:
        await h.stop()
        await slack.stop()


async def test_an_event_while_slack_is_unreachable_is_acknowledged_without_a_traceback(
    http_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = http_harness
    await h.start()
    port = int(h.slack.url.rsplit(":", 1)[1])
    await h.slack.stop()  # Slack's Web API is now out of reach: connections are refused
    event = h.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> anyone there?")
    status, _ = await h.slack.deliver_http(h.events_url, h.slack.as_mention(event))
    assert status == 200
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await h.slack.start(port)  # Slack is back: the answer gets through
    await h.settle(timeout=30)
    assert len(h.slack.calls_to("auth.test")) == 1  # start-up's: Bolt asks no more for each event
    assert h.slack.bot_replies(CHANNEL, event["ts"])


async def test_bolt_takes_nothing_from_the_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """OAuth variables in the environment would switch Bolt into multi-workspace mode; tokens there warn."""
    monkeypatch.setenv("HOME", str(harness.tmp_path))  # Bolt's OAuth mode would write its stores here
    monkeypatch.setenv("SLACK_CLIENT_ID", "1234.5678")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "client-secret-from-the-environment")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "a-signing-secret-from-the-environment")
    monkeypatch.setenv("SLACK_VERIFICATION_TOKEN", "legacy-verification-token")
    with caplog.at_level(logging.DEBUG, logger="slack_bolt"):
        await harness.start()
        event = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> single workspace?")
        await harness.deliver(harness.slack.as_mention(event))
        await harness.settle()
    assert [r.text for r in harness.slack.bot_replies(CHANNEL, event["ts"])] == ["You said: [Ada] single workspace?"]
    bolt_said = [r.getMessage() for r in caplog.records if r.name.startswith("slack_bolt")]
    assert not [m for m in bolt_said if "token" in m or "SLACK_" in m or "InstallationStore" in m], bolt_said
    assert not (harness.tmp_path / ".bolt-app-installation").exists()


def test_the_example_env_file_puts_nobody_in_socket_mode_with_a_placeholder_token() -> None:
    example = Path(__file__).parent.parent / ".env.example"
    values = dotenv_values(example)
    assert "SLACK_APP_TOKEN" not in values  # optional: commented out, so a copy starts in HTTP mode
    assert "# SLACK_APP_TOKEN=xapp-" in example.read_text()
    assert "keep the trailing slash" not in example.read_text()  # config.py adds it
