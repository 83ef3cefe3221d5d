"""What reaches the log: no message text at INFO and above, whoever logs it, and no secret ever."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

import bot.__main__ as entry
from bot.config import Settings, load_settings
from bot.logs import configure_logging
from tests.conftest import Harness
from tests.fakes import slack as fs

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
