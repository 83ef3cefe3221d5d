"""Logging set-up: one format, and filters on the one handler, so they apply whatever logged a record.

- What people wrote stays out of the log at INFO and above: Slack's libraries log request bodies (Bolt, for a
  request with a bad signature: `body: command=/ask&text=...`); those bodies are cut.
- The Socket Mode client logs a traceback with each failed connection attempt; its line names the error already.
- Secrets (tokens, keys, the signing secret) are redacted from every message and traceback.
"""

from __future__ import annotations

import logging
from typing import TextIO

from bot.config import Settings

# Where Slack's libraries put a payload in a line, and what they say before it.
PAYLOAD_MARKERS = (
    "body:",  # Bolt: a bad signature's request body; the Socket Mode adapter: an unsuccessful response body
    "Unhandled request (",  # Bolt: an event or command no listener took, with fields of its payload
    "for the request (",  # Bolt: a global middleware that neither answered nor went on
)
LIBRARIES = ("slack_bolt", "slack_sdk")


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 8]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self._secrets):
            record.msg, record.args = self._redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


class WithholdPayloads(logging.Filter):
    """Slack's libraries log payloads, and payloads carry what people wrote: below DEBUG, the log gets none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO or not record.name.startswith(LIBRARIES):
            return True
        message = record.getMessage()
        cuts = [i + len(marker) for marker in PAYLOAD_MARKERS if (i := message.find(marker)) >= 0]
        if cuts:
            record.msg, record.args = message[: min(cuts)] + " [withheld]", None
        return True


class OneLineRetries(logging.Filter):
    """The Socket Mode client logs a full traceback each time a connection attempt fails, every 10 seconds while
    Slack is out of reach; its message names the error, so the traceback is kept for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("slack_sdk.socket_mode") and record.exc_info and record.levelno < logging.CRITICAL:
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WithholdPayloads())
    if settings.log_level != "DEBUG":
        handler.addFilter(OneLineRetries())
    # Last, so that it also sees the traceback text the filters before it left.
    handler.addFilter(
        RedactSecrets(
            [
                settings.slack_bot_token,
                settings.slack_app_token or "",
                settings.mistral_api_key,
                settings.slack_signing_secret or "",
            ]
        )
    )
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
