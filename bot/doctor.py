"""`python -m bot doctor`: checks a deployment from its real settings, one line per check.

Each check asks the real service once (no retries, a short timeout), so a broken setting shows in seconds
with what to do about it, instead of as a start-up that retries or a bot that answers nobody. The database
is only read: nothing is migrated or created. No line ever holds a secret: the checks never quote one, and
`run_doctor` hides any that would slip through anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, Settings, load_settings
from bot.core.personas import Catalog, Persona, PersonaError
from bot.mistral import error_message
from bot.personas import load_catalog
from bot.runtime import APP_TOKEN_HELP, BOT_TOKEN_HELP, loop_factory
from bot.storage import SchemaTooNew, StoreError, StoreUnavailable
from bot.storage.check import SchemaStatus, channel_personas, schema_status

# The bot scopes manifest.yml asks for (oauth_config.scopes.bot); a test keeps the two equal.
REQUIRED_SCOPES = frozenset(
    {
        "app_mentions:read",
        "assistant:write",
        "channels:history",
        "channels:join",
        "chat:write",
        "chat:write.public",
        "commands",
        "files:read",
        "groups:history",
        "im:history",
        "mpim:history",
        "users:read",
    }
)
SCOPES_HELP = "add them under OAuth & Permissions (or paste manifest.yml again) and reinstall the app"
# Slack's answers that refuse a token, as opposed to Slack having trouble.
REFUSALS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})
TIMEOUT = 10  # seconds for each service: one attempt, then the line says what happened
MAX_CHOICES = 12  # model names shown in a fix; the real list is long
# Settings whose values never appear in the output (DATABASE_URL may hold a password).
SECRET_SETTINGS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "MISTRAL_API_KEY", "DATABASE_URL")

SETTINGS = "Settings"
PERSONAS = "Personas file"
BOT_TOKEN = "Slack bot token"
SCOPES = "Slack scopes"
CONNECTION = "Slack connection"
MISTRAL_KEY = "Mistral API key"
MODELS = "Mistral models"
DATABASE = "Database"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # what to do, for a failed check
    ran: bool = True  # False: skipped, since a check it needs failed (`detail` says which)


@dataclass(frozen=True)
class SlackIdentity:
    """What `auth.test` says about the bot token; `scopes` is None when Slack sent no `x-oauth-scopes`."""

    team: str
    team_id: str
    user: str
    user_id: str
    scopes: frozenset[str] | None


def format_check(check: Check) -> str:
    if not check.ran:
        return f"– {check.name}: not run ({check.detail})"
    line = f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}"
    return f"{line} → {check.fix}" if not check.ok and check.fix else line


def not_run(name: str, why: str) -> Check:
    return Check(name, False, why, ran=False)


def run_doctor(env: Mapping[str, str], out: TextIO) -> int:
    """Run every check on the settings in `env` and print one line each; 0 only when every check passes."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        checks = runner.run(diagnose(env))
    secrets = _secrets(env)
    for check in checks:
        print(_hide(format_check(check), secrets), file=out)
    return 0 if all(check.ok for check in checks) else 1


async def diagnose(env: Mapping[str, str]) -> list[Check]:
    """Every check, in the order printed; the independent ones run at the same time."""
    first, settings = check_settings(env)
    if settings is None:
        later = (PERSONAS, BOT_TOKEN, SCOPES, CONNECTION, MISTRAL_KEY, MODELS, DATABASE)
        return [first, *(not_run(name, "the settings do not parse") for name in later)]
    personas, catalog = check_personas(settings)
    (bot, identity), connection, (key, models), (database, schema) = await asyncio.gather(
        check_bot_token(settings), check_connection(settings), check_mistral_key(settings), check_database(settings)
    )
    scopes = check_scopes(identity) if identity else not_run(SCOPES, "needs a working bot token")
    if models is None:
        in_use = not_run(MODELS, "needs a working Mistral API key")
    else:
        stored = await _stored_personas(settings, identity, schema)
        in_use = check_models(models, models_in_use(settings, catalog, stored))
    return [first, personas, bot, scopes, connection, key, in_use, database]


# settings ------------------------------------------------------------------------------------------------


def check_settings(env: Mapping[str, str]) -> tuple[Check, Settings | None]:
    try:
        settings = load_settings(env)
    except ConfigError as exc:  # its message names the setting, never the value
        return Check(SETTINGS, False, str(exc), "set it in the environment or the env file (see .env.example)"), None
    mode = "Socket Mode" if settings.socket_mode else f"HTTP mode on port {settings.port}"
    database = "PostgreSQL" if settings.database_url else "SQLite"
    return Check(SETTINGS, True, f"parsed ({mode}, {database})"), settings


def check_personas(settings: Settings) -> tuple[Check, Catalog]:
    """PERSONAS_FILE as the bot reads it at start: a missing file is fine (every channel uses the defaults)."""
    path = settings.personas_file
    if not path.exists():
        return Check(PERSONAS, True, f"{path} not present: every channel uses the default persona"), Catalog()
    try:
        catalog = load_catalog(path)
    except PersonaError as exc:
        fix = "fix PERSONAS_FILE (personas.example.toml shows how)"
        return Check(PERSONAS, False, f"{path}: {exc}", fix), Catalog()
    detail = f"{path}: {_count(len(catalog.named), 'persona')}, {_count(len(catalog.channels), 'channel default')}"
    return Check(PERSONAS, True, detail), catalog


# Slack ---------------------------------------------------------------------------------------------------


def _slack(settings: Settings, token: str | None = None) -> AsyncWebClient:
    # No retry handlers: one attempt, so an unreachable Slack is a line within TIMEOUT, not a wait.
    return AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=TIMEOUT, retry_handlers=[])


def _slack_error(exc: SlackApiError) -> str:
    data = exc.response.data
    error = data.get("error") if isinstance(data, dict) else None
    return str(error or f"HTTP {exc.response.status_code}")


def _slack_trouble(name: str, method: str, problem: str) -> Check:
    return Check(name, False, f"Slack answered {method} with {problem}", "try again in a minute; check SLACK_API_URL")


def _unreachable(name: str, service: str, exc: BaseException, setting: str) -> Check:
    return Check(name, False, f"cannot reach {service} ({type(exc).__name__})", f"check {setting} and the network")


async def check_bot_token(settings: Settings) -> tuple[Check, SlackIdentity | None]:
    """`auth.test` with the bot token: the workspace and bot user, and the scopes granted (its header)."""
    try:
        response = await _slack(settings, settings.slack_bot_token).auth_test()
    except SlackApiError as exc:
        error = _slack_error(exc)
        if error in REFUSALS:
            return Check(BOT_TOKEN, False, f"Slack refused SLACK_BOT_TOKEN ({error})", BOT_TOKEN_HELP), None
        return _slack_trouble(BOT_TOKEN, "auth.test", error), None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return _unreachable(BOT_TOKEN, "Slack", exc, "SLACK_API_URL"), None
    header = response.headers.get("x-oauth-scopes")
    identity = SlackIdentity(
        team=str(response.get("team") or "?"),
        team_id=str(response.get("team_id") or "?"),
        user=str(response.get("user") or "?"),
        user_id=str(response.get("user_id") or "?"),
        scopes=None if header is None else frozenset(s.strip() for s in str(header).split(",") if s.strip()),
    )
    detail = f"workspace {identity.team} ({identity.team_id}), bot @{identity.user} ({identity.user_id})"
    return Check(BOT_TOKEN, True, detail), identity


def check_scopes(identity: SlackIdentity) -> Check:
    """The granted scopes cover what manifest.yml asks for; extra ones are fine."""
    if identity.scopes is None:
        detail = "Slack sent no x-oauth-scopes header with auth.test, so the granted scopes are unknown"
        return Check(SCOPES, False, detail, "check that SLACK_API_URL is Slack's Web API")
    missing = sorted(REQUIRED_SCOPES - identity.scopes)
    if missing:
        return Check(SCOPES, False, f"missing {', '.join(missing)}", SCOPES_HELP)
    return Check(SCOPES, True, f"all {len(REQUIRED_SCOPES)} scopes manifest.yml asks for are granted")


async def check_connection(settings: Settings) -> Check:
    """Socket Mode: the app token opens a connection (the websocket itself is not opened). HTTP: a signing secret."""
    if not settings.socket_mode:
        if settings.slack_signing_secret:
            return Check(CONNECTION, True, "HTTP mode, SLACK_SIGNING_SECRET is set to check Slack's requests")
        fix = "copy the Signing Secret from Basic Information → App Credentials into SLACK_SIGNING_SECRET"
        return Check(CONNECTION, False, "HTTP mode needs SLACK_SIGNING_SECRET", fix)
    try:
        await _slack(settings).apps_connections_open(app_token=settings.slack_app_token or "")
    except SlackApiError as exc:
        error = _slack_error(exc)
        if error in REFUSALS:
            return Check(CONNECTION, False, f"Slack refused SLACK_APP_TOKEN ({error})", APP_TOKEN_HELP)
        return _slack_trouble(CONNECTION, "apps.connections.open", error)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return _unreachable(CONNECTION, "Slack", exc, "SLACK_API_URL")
    return Check(CONNECTION, True, "the app token opens a Socket Mode connection")


# Mistral -------------------------------------------------------------------------------------------------


async def check_mistral_key(settings: Settings) -> tuple[Check, dict[str, int | None] | None]:
    """`GET /v1/models` with the key; on success, every model name (ids and aliases) → its context size."""
    headers = {"Authorization": f"Bearer {settings.mistral_api_key}", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=settings.mistral_base_url, headers=headers, timeout=TIMEOUT) as http:
        try:
            response = await http.get("/v1/models")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _unreachable(MISTRAL_KEY, "the Mistral API", exc, "MISTRAL_BASE_URL"), None
    status = response.status_code
    if status in (401, 403):
        detail = f"the key was refused (HTTP {status}: {error_message(response.content)})"
        return Check(MISTRAL_KEY, False, detail, "set MISTRAL_API_KEY to a key of your Mistral workspace"), None
    if status != 200:
        detail = f"GET /v1/models answered HTTP {status} ({error_message(response.content)})"
        return Check(MISTRAL_KEY, False, detail, "try again in a minute; check MISTRAL_BASE_URL"), None
    try:
        models = context_sizes(response.json())
    except (ValueError, AttributeError, TypeError):
        models = {}
    if not models:
        detail = "GET /v1/models returned no list of models"
        return Check(MISTRAL_KEY, False, detail, "check that MISTRAL_BASE_URL is a Mistral API"), None
    return Check(MISTRAL_KEY, True, f"accepted ({_count(len(models), 'model name')} listed)"), models


def context_sizes(body: Any) -> dict[str, int | None]:
    """Model name (id or alias) → `max_context_length` (None where not given), as `GET /v1/models` lists them."""
    sizes: dict[str, int | None] = {}
    for entry in body.get("data") or []:
        length = entry.get("max_context_length")
        for name in [entry.get("id"), *(entry.get("aliases") or [])]:
            if isinstance(name, str):
                sizes.setdefault(name, length if isinstance(length, int) else None)
    return sizes


def models_in_use(settings: Settings, catalog: Catalog, stored: Iterable[tuple[str, Persona]]) -> dict[str, list[str]]:
    """Every model the bot may ask for → where it is set: the default, PERSONAS_FILE's personas, channels' choices."""
    uses: dict[str, list[str]] = {}
    if settings.model.model:
        uses[settings.model.model] = ["default"]
    for name, persona in sorted(catalog.named.items()):
        if persona.params.model:
            uses.setdefault(persona.params.model, []).append(f'persona "{name}"')
    for channel, persona in stored:
        if persona.params.model:
            chosen = f'persona "{persona.name}"' if persona.name else "/persona set"
            uses.setdefault(persona.params.model, []).append(f"channel {channel}, {chosen}")
    return uses


def check_models(available: Mapping[str, int | None], uses: Mapping[str, list[str]]) -> Check:
    unknown = {model: where for model, where in uses.items() if model not in available}
    if unknown:
        detail = "; ".join(f"unknown model {model} ({', '.join(where)})" for model, where in unknown.items())
        return Check(MODELS, False, detail, _models_fix(available, [w for ws in unknown.values() for w in ws]))
    found = []
    for model, where in uses.items():
        size = available[model]
        context = f"{size:,} tokens of context" if size is not None else "context size not listed"
        found.append(f"{model} {context} ({', '.join(where)})")
    return Check(MODELS, True, "; ".join(found))


def _models_fix(available: Mapping[str, int | None], places: list[str]) -> str:
    settings = []
    if "default" in places:
        settings.append("MISTRAL_MODEL")
    if any(p.startswith("persona ") for p in places):
        settings.append("the persona's model")
    if any(p.startswith("channel ") for p in places):
        settings.append("the channel's persona (/persona use or reset there)")
    names = sorted(available)
    # The real list is long (dated versions, embeddings): then the moving aliases, what a deployment wants.
    shown = names if len(names) <= MAX_CHOICES else [n for n in names if n.endswith("-latest")] or names
    choices = ", ".join(shown[:MAX_CHOICES])
    if min(len(shown), MAX_CHOICES) < len(names):
        choices += f", … ({len(names)} in GET /v1/models)"
    return f"set {' or '.join(settings)} to one of: {choices}"


# the database --------------------------------------------------------------------------------------------


async def check_database(settings: Settings) -> tuple[Check, SchemaStatus | None]:
    """Reachable and migrated, read without changing anything (the bot migrates when it starts)."""
    try:
        status = await schema_status(settings)
    except SchemaTooNew as exc:
        detail, _, fix = str(exc).partition("; ")
        return Check(DATABASE, False, detail, fix or "run the newer version of the bot"), None
    except StoreUnavailable as exc:
        return Check(DATABASE, False, str(exc), "check DATABASE_URL and that the database server runs"), None
    except StoreError as exc:
        return Check(DATABASE, False, str(exc), "point DATABASE_URL at a database the bot may create tables in"), None
    if status.fresh:
        return Check(DATABASE, True, f"{status.where}: not created yet; the bot creates it at its first start"), status
    if status.pending:
        detail = f"{status.where}: {_count(len(status.pending), 'migration')} pending: {', '.join(status.pending)}"
        return Check(DATABASE, False, detail, "start the bot once (it migrates on start)"), status
    detail = f"{status.where}: reachable and migrated ({_count(len(status.applied), 'migration')})"
    return Check(DATABASE, True, detail), status


async def _stored_personas(
    settings: Settings, identity: SlackIdentity | None, schema: SchemaStatus | None
) -> list[tuple[str, Persona]]:
    """Channels' `/persona` choices, when the workspace is known and the database has the table; else none."""
    if identity is None or schema is None or "m003_channel_personas" not in schema.applied:
        return []
    try:
        return await channel_personas(settings, identity.team_id)
    except (StoreError, ValueError, TypeError):
        return []  # the database line says what is wrong with the database; a bad row is not this check's


# output --------------------------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _secrets(env: Mapping[str, str]) -> list[str]:
    """The secret values `env` holds, longest first, read from the mapping itself: settings may not parse."""
    values = [env.get(name, "").strip() for name in SECRET_SETTINGS]
    try:
        values.append(urlsplit(env.get("DATABASE_URL", "").strip()).password or "")
    except ValueError:
        pass
    # Very short values would hide ordinary words; no real token, key or password is that short.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _hide(line: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        line = line.replace(secret, "[hidden]")
    return line
