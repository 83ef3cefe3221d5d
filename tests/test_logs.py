"""What reaches the log: no message text at INFO and above, whoever logs it, and no secret ever; JSON or text
lines, each naming the answer it is about."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import bot.__main__ as entry
from bot.config import Settings, load_settings
from bot.logs import WEB_CLIENT_LOGGER, bind_answer, bound_answer, configure_logging
from tests.conftest import Harness
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.mistral import Script

PRIVATE = "the launch code is 0000"
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-secret-bot-token-1234",
    "SLACK_APP_TOKEN": "xapp-secret-app-token-5678",
    "SLACK_SIGNING_SECRET": "secret-signing-secret-9012",
    "MISTRAL_API_KEY": "secret-mistral-key-3456",
}


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# Bolt's loggers copy the root's level when Bolt first makes them; fresh names keep these tests independent.


def settings(**env: str) -> Settings:
    return load_settings({**SECRETS, **env})


def configured(level: str = "INFO") -> io.StringIO:
    out = io.StringIO()
    configure_logging(settings(LOG_LEVEL=level), out)
    return out


# message text --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["command", "event"])
async def test_a_request_with_a_bad_signature_logs_no_message_text(
    http_harness: Harness, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    h = http_harness
    await h.start()
    if kind == "command":
        body = urlencode(h.slack.command("/ask", PRIVATE, user="U0ADA", channel="C0LOG")).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        event = h.slack.user_message("C0LOG", "U0ADA", f"<@{fs.BOT_USER}> {PRIVATE}")
        body, content_type = json.dumps(h.slack.envelope(event)).encode(), "application/json"
    with caplog.at_level(logging.DEBUG):
        status, _ = await h.slack.post_http(
            h.events_url, body, content_type=content_type, headers=h.slack.sign(body, secret="not-the-secret")
        )
    assert status == 401
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("signature" in line for line in loud)  # the refusal is logged...
    assert not [line for line in loud if "launch" in line]  # ...without what was written


@pytest.mark.parametrize(
    "logger,line,kept",
    [
        (
            "slack_bolt.tests.verification",
            f"Invalid request signature detected (signature: v0=1, timestamp: 1, body: text={PRIVATE})",
            "Invalid request signature detected",
        ),
        (
            "slack_bolt.tests.unhandled",
            f"Unhandled request ({{'type': 'event_callback', 'event': {{'subtype': '{PRIVATE}'}}}})",
            "Unhandled request",
        ),
        (
            "slack_sdk.tests.socket_mode",
            f"Unsuccessful Bolt execution result (status: 500, body: {PRIVATE})",
            "Unsuccessful Bolt execution result",
        ),
    ],
)
def test_payloads_that_slacks_libraries_log_are_withheld(
    restored_logging: None, logger: str, line: str, kept: str
) -> None:
    out = configured()
    logging.getLogger(logger).warning(line)
    shown = out.getvalue()
    assert kept in shown and "[withheld]" in shown and "launch" not in shown


def test_at_debug_the_payload_stays(restored_logging: None) -> None:
    out = configured("DEBUG")
    logging.getLogger("slack_bolt.tests.debug").debug(f"request body: {PRIVATE}")
    assert PRIVATE in out.getvalue()


@pytest.mark.parametrize(("level", "built"), [("INFO", False), ("DEBUG", True)])
async def test_slack_sdk_writes_out_each_call_for_its_debug_line_only_at_debug(
    restored_logging: None, slack: fs.FakeSlack, level: str, built: bool
) -> None:
    """slack_sdk formats every call's whole payload for a debug line when its logger's own level is unset (it
    tests `logger.level`, not the effective level): at INFO that was an eighth of each call's CPU, for nothing."""
    logger = logging.getLogger(WEB_CLIENT_LOGGER)
    before = logger.level
    try:
        out = configured(level)
        client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)
        assert client.logger is logger
        assert (await client.api_call("auth.test"))["ok"]
        assert (logger.level <= logging.DEBUG) is built  # the library's own test, before it builds the line
        assert ("Sending a request" in out.getvalue()) is built
    finally:
        logger.setLevel(before)


# secrets --------------------------------------------------------------------------------------------------


def test_secrets_are_redacted_from_messages_and_tracebacks(restored_logging: None) -> None:
    out = configured()
    log = logging.getLogger("anything.at.all")
    for secret in SECRETS.values():
        log.warning("the setting is %s", secret)
        try:
            raise RuntimeError(f"refused: {secret}")
        except RuntimeError:
            log.exception("a failure")
    shown = out.getvalue()
    assert shown.count("[redacted]") == 2 * len(SECRETS)  # in the message, and in the traceback's last line
    assert not [secret for secret in SECRETS.values() if secret in shown]


def test_the_real_start_path_installs_the_filters(
    restored_logging: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`python -m bot`'s own path, with the bot's run replaced by a function that logs what must not show."""

    def run(settings: Settings) -> None:
        logging.getLogger("bot.anywhere").error("key %s", settings.mistral_api_key)
        logging.getLogger("slack_bolt.tests.start").info(f"Invalid request signature detected (body: {PRIVATE})")

    monkeypatch.chdir(tmp_path)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(entry, "run", run)
    assert entry.main([]) == 0
    shown = capsys.readouterr().err
    assert "key [redacted]" in shown and SECRETS["MISTRAL_API_KEY"] not in shown
    assert "Invalid request signature detected" in shown and "launch" not in shown


def test_database_passwords_are_redacted(restored_logging: None) -> None:
    out = io.StringIO()
    url = "postgresql://bot:db-password-7788@db.internal/bot"
    configure_logging(settings(DATABASE_URL=url), out)
    logging.getLogger("bot.anywhere").warning("cannot connect to %s with db-password-7788", url)
    shown = out.getvalue()
    assert "db-password-7788" not in shown and "[redacted]" in shown


def test_tokens_of_known_shapes_are_redacted_whoever_they_belong_to(restored_logging: None) -> None:
    out = configured()
    another = "xoxp-1234567890-0987654321-abcdefghijklmnop"
    logging.getLogger("bot.anywhere").warning("Slack refused %s (conninfo password=hunter2)", another)
    shown = out.getvalue()
    assert another not in shown and "hunter2" not in shown and "[secret withheld]" in shown


def test_rows_that_postgresql_quotes_are_withheld(restored_logging: None) -> None:
    out = configured()
    log = logging.getLogger("bot.anywhere")
    refusal = f'null value in column "ts" violates not-null constraint\nDETAIL:  Failing row contains (7, {PRIVATE}).'
    try:
        raise RuntimeError(refusal)
    except RuntimeError:
        log.exception("unexpected error answering 1700.000100 in C0LOG")
    log.warning("could not save: %s", refusal)
    shown = out.getvalue()
    assert "launch" not in shown
    assert shown.count("DETAIL:  Failing row contains [withheld]") == 2
    assert "violates not-null constraint" in shown  # what went wrong stays


# formats and the answer's ids -------------------------------------------------------------------------


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the log, each one JSON object (a line that is not fails the test)."""
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""  # each line is complete
    return [json.loads(line) for line in lines[:-1]]


def configured_json(level: str = "INFO") -> io.StringIO:
    out = io.StringIO()
    configure_logging(settings(LOG_LEVEL=level, LOG_FORMAT="json"), out)
    return out


def test_json_logs_are_one_object_per_line(restored_logging: None) -> None:
    out = configured_json()
    log = logging.getLogger("bot.tests.json")
    log.info('two\nlines and a \u2028 separator, "quotes" and é')
    log.warning("plain")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("it failed")
    entries = json_lines(out)
    assert len(entries) == 3
    first, second, third = entries
    assert first["message"] == 'two\nlines and a \u2028 separator, "quotes" and é'
    assert second == {"time": second["time"], "level": "WARNING", "logger": "bot.tests.json", "message": "plain"}
    assert datetime.fromisoformat(second["time"]).utcoffset() == timedelta(0) and second["time"].endswith("Z")
    assert third["level"] == "ERROR" and third["exc"].startswith("Traceback") and "ValueError: bad" in third["exc"]
    assert out.getvalue().isascii()  # no character in a message can pass for a line break


def test_an_exceptions_traceback_goes_into_exc_with_secrets_redacted(restored_logging: None) -> None:
    out = configured_json()
    try:
        raise RuntimeError(f"refused: {SECRETS['SLACK_BOT_TOKEN']} and {SECRETS['MISTRAL_API_KEY']}")
    except RuntimeError:
        logging.getLogger("bot.tests.exc").exception("a failure with %s", SECRETS["SLACK_SIGNING_SECRET"])
    (entry,) = json_lines(out)
    assert entry["message"] == "a failure with [redacted]"
    assert "RuntimeError: refused: [redacted] and [redacted]" in entry["exc"]
    assert not [secret for secret in SECRETS.values() if secret in out.getvalue()]


async def test_lines_logged_inside_a_bound_answer_carry_its_ids(restored_logging: None) -> None:
    out = configured_json()
    log = logging.getLogger("bot.tests.ids")

    async def child() -> None:
        log.info("from a task the answer started")

    async def answer() -> None:
        bind_answer("T1", "C1", "1700.000100", 42)
        log.info("inside")
        await asyncio.create_task(child())

    log.info("before")
    await asyncio.create_task(answer())
    log.info("after")  # the answer's task had its own context: this one never saw the ids
    before, inside, from_child, after = json_lines(out)
    ids = {"workspace": "T1", "channel": "C1", "thread": "1700.000100", "answer": 42}
    assert inside.items() >= ids.items() and from_child.items() >= ids.items()
    for outside in (before, after):
        assert not set(ids) & set(outside)
    assert bound_answer() is None


async def test_text_lines_end_with_the_ids(restored_logging: None) -> None:
    out = configured()
    log = logging.getLogger("bot.tests.text")

    async def answer(answer_id: int | None) -> None:
        bind_answer("T1", "C1", "1700.000100", answer_id)
        log.info("inside")

    log.info("outside")
    await asyncio.create_task(answer(42))
    await asyncio.create_task(answer(None))  # before the store gave the answer an id
    outside, with_id, without_id = out.getvalue().splitlines()
    assert outside.endswith("bot.tests.text: outside")
    assert with_id.endswith("bot.tests.text: inside [T1 C1 1700.000100 #42]")
    assert without_id.endswith("bot.tests.text: inside [T1 C1 1700.000100]")


async def test_the_json_log_of_a_real_answer(restored_logging: None, http_harness: Harness) -> None:
    """A mention answered end to end: every line is JSON, none holds what was asked or answered or a secret,
    and the answer's lines name it."""
    h = http_harness
    out = io.StringIO()
    configure_logging(load_settings({**h.base_env(), "LOG_FORMAT": "json"}), out)
    question = "does the zanzibar-quokka-7731 sing?"
    answer = "Only the marmalade-pelican-4410 sings."
    h.mistral.queue(Script(chunks=[answer]))
    await h.start()
    event = h.slack.user_message("C0LOG", "U0ADA", f"<@{fs.BOT_USER}> {question}")
    await h.deliver(h.slack.as_mention(event))
    await h.settle()
    assert [r.text for r in h.slack.bot_replies("C0LOG", event["ts"])] == [answer]
    await h.stop()

    entries = json_lines(out)
    shown = out.getvalue()
    assert entries and "zanzibar" not in shown and "marmalade" not in shown
    for secret in (fs.BOT_TOKEN, fs.SIGNING_SECRET, fm.API_KEY):
        assert secret not in shown
    about_it = [e for e in entries if e.get("thread") == event["ts"]]
    assert about_it, "no line names the answer"
    assert all(e["workspace"] == fs.TEAM and e["channel"] == "C0LOG" and isinstance(e["answer"], int) for e in about_it)
