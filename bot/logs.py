"""Logging set-up: one format, and filters on the one handler, so they apply whatever logged a record.

- What people wrote stays out of the log at INFO and above: Slack's libraries log request bodies (Bolt, for a
  request with a bad signature: `body: command=/ask&text=...`); those bodies are cut.
- The Socket Mode client logs a traceback with each failed connection attempt; its line names the error already.
- Secrets (tokens, keys, the signing secret, the database's password, and any key or token of a known shape)
  are redacted from every message and traceback, at every level.
- Rows that PostgreSQL quotes in its errors are cut at INFO and above, tracebacks included.
- Every line logged while an answer is written names it: `bind_answer` at the start of the answer's task puts
  its workspace, channel, thread and id in a context variable, which asyncio copies into every task that one
  starts, and a filter copies them onto each record.

`LOG_FORMAT=json` writes one JSON object per line (`time`, `level`, `logger`, `message`, the answer's
`workspace`, `channel`, `thread` and `answer` when bound, `exc` for a traceback); `text` writes one readable
line, the answer's ids in brackets at its end.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from bot.config import Settings
from bot.core.redact import Redactor

# Where Slack's libraries put a payload in a line, and what they say before it.
PAYLOAD_MARKERS = (
    "body:",  # Bolt: a bad signature's request body; the Socket Mode adapter: an unsuccessful response body
    "Unhandled request (",  # Bolt: an event or command no listener took, with fields of its payload
    "for the request (",  # Bolt: a global middleware that neither answered nor went on
)
LIBRARIES = ("slack_bolt", "slack_sdk")
# The logger of slack_sdk's async Web API client (`AsyncWebClient`), which the bot and Bolt call through.
WEB_CLIENT_LOGGER = "slack_sdk.web.async_base_client"


# Keys and tokens of known shapes (bot.core.redact's `secret`), whoever's they are: another workspace's token,
# a response URL's webhook, `password=` in a connection string.
KNOWN_SHAPES = Redactor.parse("secret")
# PostgreSQL's errors quote the row or key they refused: `DETAIL:  Failing row contains (…, 'what someone
# wrote', …)`. Such an error reaches the log with the traceback of whatever failed.
ROW_DETAIL = re.compile(r"^(DETAIL:\s+(?:Failing row contains|Key)\b).*$", re.MULTILINE)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 8]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return KNOWN_SHAPES.redact(text)[0]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


class WithholdPayloads(logging.Filter):
    """Slack's libraries log payloads, and payloads carry what people wrote: below DEBUG, the log gets none.
    Nor does it get the rows PostgreSQL quotes in its errors, from any logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        message = shown = record.getMessage()
        if record.name.startswith(LIBRARIES):
            cuts = [i + len(marker) for marker in PAYLOAD_MARKERS if (i := shown.find(marker)) >= 0]
            if cuts:
                shown = shown[: min(cuts)] + " [withheld]"
        if "DETAIL:" in shown:
            shown = ROW_DETAIL.sub(r"\1 [withheld]", shown)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and "DETAIL:" in record.exc_text:
            record.exc_text = ROW_DETAIL.sub(r"\1 [withheld]", record.exc_text)
        return True


class OneLineRetries(logging.Filter):
    """The Socket Mode client logs a full traceback each time a connection attempt fails, every 10 seconds while
    Slack is out of reach; its message names the error, so the traceback is kept for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("slack_sdk.socket_mode") and record.exc_info and record.levelno < logging.CRITICAL:
            record.exc_info, record.exc_text = None, None
        return True


@dataclass(frozen=True)
class AnswerIds:
    team_id: str
    channel_id: str
    thread_ts: str
    answer_id: int | None


_answer: ContextVar[AnswerIds | None] = ContextVar("answer", default=None)


def bind_answer(team_id: str, channel_id: str, thread_ts: str, answer_id: int | None) -> None:
    """Name this answer on every line the current task logs from now on, and every task it starts later.

    Call it first thing in the answer's own task: set anywhere else (a listener's coroutine), the ids would
    stay on whatever that task logs next.
    """
    _answer.set(AnswerIds(team_id, channel_id, thread_ts, answer_id))


def bound_answer() -> AnswerIds | None:
    return _answer.get()


# The record attributes the filter sets, and the JSON keys they go out as.
ID_KEYS = {"team_id": "workspace", "channel_id": "channel", "thread_ts": "thread", "answer_id": "answer"}


class AnswerContext(logging.Filter):
    """Copies the bound answer's ids onto the record (None outside an answer), for either formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _answer.get()
        for attribute in ID_KEYS:
            if not hasattr(record, attribute):  # what a caller passed in `extra` wins
                setattr(record, attribute, getattr(ids, attribute) if ids else None)
        return True


def _ids(record: logging.LogRecord) -> dict[str, Any]:
    found = {key: getattr(record, attribute, None) for attribute, key in ID_KEYS.items()}
    return {key: value for key, value in found.items() if value is not None}


class TextFormatter(logging.Formatter):
    """Today's line, with the answer's ids at its end when there is one: `… [T1 C1 1700.000100 #42]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = _ids(record)
        if not ids:
            return line
        answer = f" #{ids.pop('answer')}" if "answer" in ids else ""
        return f"{line} [{' '.join(map(str, ids.values()))}{answer}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Non-ASCII is escaped, so no character in a message can break a line in two
    for a reader that splits on Unicode line separators too."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, Any] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_ids(record),
        }
        # RedactSecrets (a filter, so before this) has already turned exc_info into a redacted exc_text.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}


def _secrets(settings: Settings) -> list[str]:
    secrets = [
        settings.slack_bot_token,
        settings.slack_app_token or "",
        settings.mistral_api_key,
        settings.slack_signing_secret or "",
    ]
    if settings.database_url:
        # The URL may hold a password; a library that logs the URL or its password says nothing with it.
        secrets += [settings.database_url, urlsplit(settings.database_url).password or ""]
    return secrets


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(FORMATTERS[settings.log_format]())
    handler.addFilter(AnswerContext())
    handler.addFilter(WithholdPayloads())
    if settings.log_level != "DEBUG":
        handler.addFilter(OneLineRetries())
    # Last, so that it also sees the traceback text the filters before it left.
    handler.addFilter(RedactSecrets(_secrets(settings)))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    # httpx logs every model request at INFO; the bot logs each answer itself (with its ids) instead.
    logging.getLogger("httpx").setLevel(logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING)
    # slack_sdk builds the text of its debug lines for every Web API call (the whole payload, blocks and all)
    # whenever its logger's own level is unset: it checks `logger.level`, not the effective level. A level of
    # its own skips that work, about an eighth of a call's CPU.
    logging.getLogger(WEB_CLIENT_LOGGER).setLevel(logging.DEBUG if settings.log_level == "DEBUG" else logging.INFO)
