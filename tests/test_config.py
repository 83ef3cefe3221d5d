from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings

BASE = {"SLACK_BOT_TOKEN": "xoxb-1-secret", "SLACK_SIGNING_SECRET": "sig-secret", "MISTRAL_API_KEY": "mk-secret"}


def test_defaults() -> None:
    s = load_settings(BASE)
    assert not s.socket_mode
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.mistral_base_url == "https://api.mistral.ai"
    assert s.model.model == "mistral-large-latest"
    assert s.database_path == "bot.db" and s.port == 3000 and s.log_level == "INFO"
    assert "secret" not in repr(s)


def test_socket_mode_needs_no_signing_secret_and_urls_are_normalised() -> None:
    s = load_settings(
        {
            **{k: v for k, v in BASE.items() if k != "SLACK_SIGNING_SECRET"},
            "SLACK_APP_TOKEN": "xapp-1",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
            "MISTRAL_BASE_URL": "http://localhost:8000/",
            "DATABASE_URL": "sqlite:////var/x.db",
            "MISTRAL_STOP": '["END"]',
            "MISTRAL_TEMPERATURE": "0.3",
            "PERSONA_ADMINS": "U1, U2",
        }
    )
    assert s.socket_mode and s.slack_api_url == "http://127.0.0.1:9/api/"
    assert s.mistral_base_url == "http://localhost:8000" and s.database_path == "/var/x.db"
    assert s.model.stop == ("END",) and s.model.temperature == 0.3
    assert s.admins == frozenset({"U1", "U2"})  # the old name of BOT_ADMINS still works


def test_admin_settings() -> None:
    s = load_settings(
        {
            **BASE,
            "BOT_ADMINS": "U9",
            "PERSONA_ADMINS": "U1",  # BOT_ADMINS wins
            "LOG_FORMAT": "JSON",
            "METRICS_PORT": "9090",
            "ALLOWED_CHANNELS": "C1, dm",
            "ALLOWED_USERS": "U1,U2",
            "USER_DAILY_TOKENS": "5000",
            "WORKSPACE_MONTHLY_BUDGET": "12.5",
            "MODEL_PRICES": "my-model=0/0",
            "RETENTION_DAYS": "30",
            "REDACT": "email,card",
        }
    )
    assert s.admins == frozenset({"U9"}) and s.log_format == "json" and s.metrics_port == 9090
    assert s.allowed_channels == frozenset({"C1", "dm"}) and s.allowed_users == frozenset({"U1", "U2"})
    assert s.user_daily_tokens == 5000 and s.workspace_monthly_budget == 12.5 and s.retention_days == 30
    assert s.prices["my-model"].input == 0 and "mistral-large-latest" in s.prices  # over the built-in list
    assert s.redact.active and s.redact.redact("write to ada@example.com")[0] != "write to ada@example.com"
    defaults = load_settings(BASE)
    assert defaults.log_format == "text" and defaults.metrics_port is None and not defaults.redact.active
    assert defaults.user_daily_tokens is None and defaults.workspace_monthly_budget is None
    assert defaults.retention_days is None and not defaults.allowed_channels and not defaults.admins


@pytest.mark.parametrize(
    "url", ["postgresql://bot:secret@db.internal:5433/bot", "postgres://bot:secret@db.internal/bot"]
)
def test_a_postgresql_url_selects_postgresql_and_stays_out_of_repr(url: str) -> None:
    s = load_settings({**BASE, "DATABASE_URL": url, "DATABASE_POOL_SIZE": "8"})
    assert s.database_url == url and s.database_pool_size == 8
    assert "secret" not in repr(s)
    sqlite = load_settings(BASE)
    assert sqlite.database_url is None and sqlite.database_pool_size == 4


@pytest.mark.parametrize(
    "change,name",
    [
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_APP_TOKEN": "xoxb-wrong"}, "SLACK_APP_TOKEN"),
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET"),
        ({"MISTRAL_API_KEY": " "}, "MISTRAL_API_KEY"),
        ({"SLACK_API_URL": "slack.com"}, "SLACK_API_URL"),
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u:secret@h:port/db"}, "DATABASE_URL"),
        ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE"),
        ({"MISTRAL_TEMPERATURE": "3"}, "MISTRAL_TEMPERATURE"),
        ({"MISTRAL_TEMPERATURE": "nan"}, "MISTRAL_TEMPERATURE"),
        ({"MISTRAL_TOP_P": "0"}, "MISTRAL_TOP_P"),
        ({"MISTRAL_SAFE_PROMPT": "maybe"}, "MISTRAL_SAFE_PROMPT"),
        ({"MISTRAL_MAX_TOKENS": "0"}, "MISTRAL_MAX_TOKENS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"SLACK_STREAMING": "sometimes"}, "SLACK_STREAMING"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"METRICS_PORT": "0"}, "METRICS_PORT"),
        ({"USER_DAILY_TOKENS": "many"}, "USER_DAILY_TOKENS"),
        ({"WORKSPACE_MONTHLY_BUDGET": "-5"}, "WORKSPACE_MONTHLY_BUDGET"),
        ({"MODEL_PRICES": "my-model=cheap"}, "MODEL_PRICES"),
        ({"RETENTION_DAYS": "0"}, "RETENTION_DAYS"),
        ({"REDACT": "email,([a-z"}, "REDACT"),
        ({"MISTRAL_IDLE_TIMEOUT": "-1"}, "MISTRAL_IDLE_TIMEOUT"),
    ],
)
def test_a_bad_setting_names_itself_and_never_leaks_secrets(change: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **change})
    message = str(info.value)
    assert name in message and "\n" not in message
    assert "secret" not in message


@pytest.mark.parametrize(
    "change,message",
    [
        ({"MISTRAL_MAX_TOKENS": "0"}, "MISTRAL_MAX_TOKENS must be at least 1"),
        ({"MISTRAL_CONTEXT_TOKENS": "100"}, "MISTRAL_CONTEXT_TOKENS must be at least 256"),
        ({"PORT": "0"}, "PORT must be between 1 and 65535"),
    ],
)
def test_a_range_error_states_only_the_bounds_that_exist(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **change})
    assert str(info.value) == message
