"""Environment → one frozen `Settings` object, read once at start-up and passed down.

No other module reads the environment. A missing or malformed setting raises `ConfigError` with one line
that names it; secrets are never part of that line or of `repr(settings)`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from bot.core.params import ModelParams, ParamError, parse_stop
from bot.core.prices import Price, parse_prices, price_table
from bot.core.redact import Redactor

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant answering in Slack. People talk to you in Slack threads; each user "
    "message starts with the speaker's name in square brackets. Answer concisely, in the language of the "
    "question. Use Markdown: short paragraphs, bullet lists, **bold** for key terms and fenced code blocks "
    "for code. Do not start your answer with your own name in brackets."
)

STREAMING_MODES = ("auto", "update", "native")
LOG_FORMATS = ("text", "json")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and never contains its value."""


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str = field(repr=False)
    mistral_api_key: str = field(repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_api_url: str = "https://slack.com/api/"
    port: int = 3000
    mistral_base_url: str = "https://api.mistral.ai"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    model: ModelParams = field(default_factory=lambda: ModelParams(model="mistral-large-latest"))
    database_path: str = "bot.db"  # SQLite's file, when database_url is None
    # A PostgreSQL connection URL (it may hold a password); None → SQLite at database_path.
    database_url: str | None = field(default=None, repr=False)
    database_pool_size: int = 4
    # An answer in flight whose process stops renewing its lease this long is taken over by another process.
    answer_lease: float = 15.0
    # An interrupted answer asked longer ago than this is marked interrupted instead of continued.
    resume_within: float = 600.0
    # Files people share: the largest one downloaded (MB), and PDFs sent as documents (else as their text).
    max_file_mb: float = 20.0
    documents: bool = True
    log_level: str = "INFO"
    log_format: str = "text"
    # Socket Mode: the port of /metrics and /healthz (HTTP mode serves them on PORT); None → no metrics server.
    metrics_port: int | None = None
    personas_file: Path = Path("personas.toml")
    # May change personas and see the workspace's usage; empty → anyone may change personas, nobody sees usage.
    admins: frozenset[str] = frozenset()
    # Who may ask, by Slack ID; empty → everyone. A DM counts as allowed where `allowed_channels` lists "dm".
    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    user_daily_tokens: int | None = None
    workspace_monthly_budget: float | None = None  # in the price table's currency
    prices: dict[str, Price] = field(default_factory=lambda: price_table({}))
    retention_days: float | None = None  # message texts older than this are deleted; None → kept
    redact: Redactor = field(default_factory=lambda: Redactor.parse(None))
    # Model context window in tokens; None → read from GET /v1/models at run time.
    context_tokens: int | None = None
    # Network budgets for the model API, in seconds.
    connect_timeout: float = 10.0
    idle_timeout: float = 60.0
    total_timeout: float = 600.0
    retry_budget: float = 60.0
    shutdown_grace: float = 20.0
    slack_streaming: str = "auto"

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


def environment(env_file: Path | None = None) -> dict[str, str]:
    """The process environment over the settings in `env_file`: the real environment wins.

    Without `env_file`, `.env` in the working directory is read when there is one. The file's values are
    returned, not put into the process environment, so no library finds them there.
    """
    path = env_file or Path(".env")
    if env_file is not None and not path.is_file():
        raise ConfigError(f"--env-file {env_file}: no such file")
    from_file = dotenv_values(path) if path.is_file() else {}
    return {**{k: v for k, v in from_file.items() if v is not None}, **os.environ}


# What Bolt's AsyncApp reads from the environment on its own when it is set: tokens (each a warning at start),
# the legacy verification token, and the OAuth pair, which would switch it into multi-workspace mode.
BOLT_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_VERIFICATION_TOKEN",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
)


@contextmanager
def hidden_from_libraries(names: tuple[str, ...] = BOLT_VARIABLES) -> Iterator[None]:
    """Hide `names` from the process environment while a library that would read them is built.

    Every setting reaches the bot through `Settings`; a library object built inside this block sees only
    what it is given.
    """
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from `env` (default: the process environment alone; `environment()` adds `.env`)."""
    env = os.environ if env is None else env
    r = _Reader(env)

    bot_token = r.required("SLACK_BOT_TOKEN")
    if not bot_token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    app_token = r.optional("SLACK_APP_TOKEN")
    if app_token is not None and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    signing_secret = r.optional("SLACK_SIGNING_SECRET")
    if app_token is None and signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is required in HTTP mode (when SLACK_APP_TOKEN is not set)")

    slack_api_url = r.url("SLACK_API_URL", "https://slack.com/api/")
    if not slack_api_url.endswith("/"):
        slack_api_url += "/"  # slack_sdk joins method names with urljoin

    try:
        model = ModelParams(
            model=r.optional("MISTRAL_MODEL") or "mistral-large-latest",
            temperature=r.number("MISTRAL_TEMPERATURE"),
            top_p=r.number("MISTRAL_TOP_P"),
            max_tokens=r.integer("MISTRAL_MAX_TOKENS", minimum=1),
            stop=parse_stop(r.optional("MISTRAL_STOP")),
            random_seed=r.integer("MISTRAL_RANDOM_SEED", minimum=0),
            safe_prompt=r.boolean("MISTRAL_SAFE_PROMPT"),
        )
        model.validate()
    except ParamError as exc:
        raise ConfigError(f"{exc.setting_env or 'MISTRAL_*'}: {exc}") from None

    streaming = (r.optional("SLACK_STREAMING") or "auto").lower()
    if streaming not in STREAMING_MODES:
        raise ConfigError(f"SLACK_STREAMING must be one of {', '.join(STREAMING_MODES)}")

    log_level = (r.optional("LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")

    log_format = (r.optional("LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError("LOG_FORMAT must be text or json")

    try:
        prices = price_table(parse_prices(r.optional("MODEL_PRICES") or "{}"))
    except ValueError as exc:
        raise ConfigError(f"MODEL_PRICES: {exc}") from None
    try:
        redact = Redactor.parse(r.optional("REDACT"))
    except ValueError as exc:
        raise ConfigError(f"REDACT: {exc}") from None

    database_path, database_url = _database(r.optional("DATABASE_URL") or "sqlite:///bot.db")
    return Settings(
        slack_bot_token=bot_token,
        slack_app_token=app_token,
        slack_signing_secret=signing_secret,
        slack_api_url=slack_api_url,
        port=r.integer("PORT", minimum=1, maximum=65535) or 3000,
        mistral_api_key=r.required("MISTRAL_API_KEY"),
        mistral_base_url=r.url("MISTRAL_BASE_URL", "https://api.mistral.ai").rstrip("/"),
        system_prompt=r.optional("SYSTEM_PROMPT") or DEFAULT_SYSTEM_PROMPT,
        model=model,
        database_path=database_path,
        database_url=database_url,
        database_pool_size=r.integer("DATABASE_POOL_SIZE", minimum=1, maximum=100) or 4,
        answer_lease=r.seconds("ANSWER_LEASE_SECONDS", 15.0),
        resume_within=r.seconds("RESUME_WITHIN_SECONDS", 600.0),
        max_file_mb=_positive(r.number("MAX_FILE_MB"), "MAX_FILE_MB") or 20.0,
        documents=r.boolean("MISTRAL_DOCUMENTS") is not False,
        log_level=log_level,
        log_format=log_format,
        metrics_port=r.integer("METRICS_PORT", minimum=1, maximum=65535),
        personas_file=Path(r.optional("PERSONAS_FILE") or "personas.toml"),
        # BOT_ADMINS replaced PERSONA_ADMINS, which still works where BOT_ADMINS is unset.
        admins=r.ids("BOT_ADMINS") or r.ids("PERSONA_ADMINS"),
        allowed_channels=r.ids("ALLOWED_CHANNELS"),
        allowed_users=r.ids("ALLOWED_USERS"),
        user_daily_tokens=r.integer("USER_DAILY_TOKENS", minimum=1),
        workspace_monthly_budget=_positive(r.number("WORKSPACE_MONTHLY_BUDGET"), "WORKSPACE_MONTHLY_BUDGET"),
        prices=prices,
        retention_days=_positive(r.number("RETENTION_DAYS"), "RETENTION_DAYS"),
        redact=redact,
        context_tokens=r.integer("MISTRAL_CONTEXT_TOKENS", minimum=256),
        connect_timeout=r.seconds("MISTRAL_CONNECT_TIMEOUT", 10.0),
        idle_timeout=r.seconds("MISTRAL_IDLE_TIMEOUT", 60.0),
        total_timeout=r.seconds("MISTRAL_TOTAL_TIMEOUT", 600.0),
        retry_budget=r.seconds("MISTRAL_RETRY_BUDGET", 60.0),
        shutdown_grace=r.seconds("SHUTDOWN_GRACE_SECONDS", 20.0),
        slack_streaming=streaming,
    )


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number")
    return value


DATABASE_URL_FORMS = (
    "DATABASE_URL must look like sqlite:///relative/path.db, sqlite:////absolute/path.db "
    "or postgresql://user:password@host:port/dbname"
)


def _database(url: str) -> tuple[str, str | None]:
    """(SQLite path, PostgreSQL URL): `sqlite:///bot.db` → ("bot.db", None); `postgresql://…` → default path, URL.

    `sqlite:////var/data/bot.db` → `/var/data/bot.db`. `postgres://` is PostgreSQL too. Errors never show the
    URL: it may hold a password.
    """
    prefix = "sqlite:///"
    if url.startswith(prefix) and len(url) > len(prefix):
        return url[len(prefix) :], None
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("postgresql", "postgres") or not rest:
        raise ConfigError(DATABASE_URL_FORMS)
    try:
        _ = urlsplit(url).port  # a port that is no number fails here rather than at start-up
    except ValueError:
        raise ConfigError("DATABASE_URL: the port must be a number between 0 and 65535") from None
    return Settings.database_path, url


class _Reader:
    """Typed reads of one environment mapping; errors name the variable, never its value."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigError(f"{name} is required but not set")
        return value

    def ids(self, name: str) -> frozenset[str]:
        """A comma-separated list of Slack IDs; empty when unset."""
        return frozenset(i.strip() for i in (self.optional(name) or "").split(",") if i.strip())

    def url(self, name: str, default: str) -> str:
        value = self.optional(name) or default
        if not value.startswith(("http://", "https://")):
            raise ConfigError(f"{name} must be an http:// or https:// URL")
        return value

    def integer(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number") from None
        too_small = minimum is not None and value < minimum
        too_large = maximum is not None and value > maximum
        if too_small or too_large:
            if minimum is not None and maximum is not None:
                raise ConfigError(f"{name} must be between {minimum} and {maximum}")
            if minimum is not None:
                raise ConfigError(f"{name} must be at least {minimum}")
            raise ConfigError(f"{name} must be at most {maximum}")
        return value

    def number(self, name: str) -> float | None:
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number")
        return value

    def seconds(self, name: str, default: float) -> float:
        value = self.number(name)
        if value is None:
            return default
        if value <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds")
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self.optional(name)
        if raw is None:
            return None
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false")
