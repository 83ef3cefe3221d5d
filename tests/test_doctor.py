"""`python -m bot doctor` against the loopback fakes and the machine's PostgreSQL, in both Slack modes.

`run_doctor` runs its own event loop, so the tests call it in a thread while the fakes serve on the test's loop.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import yaml

from bot.config import load_settings
from bot.core.params import ModelParams
from bot.core.personas import Persona
from bot.doctor import (
    REQUIRED_SCOPES,
    Check,
    SlackIdentity,
    check_models,
    check_scopes,
    diagnose,
    format_check,
    run_doctor,
)
from bot.runtime import APP_TOKEN_HELP, BOT_TOKEN_HELP
from bot.storage import open_store
from bot.storage.migrations import MIGRATIONS
from tests.conftest import Harness, free_port
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.storage.conftest import database_url  # noqa: F401 (the fixture: a fresh schema per test)

ROOT = Path(__file__).parent.parent
NAMES = [
    "Settings",
    "Personas file",
    "Slack bot token",
    "Slack scopes",
    "Slack connection",
    "Mistral API key",
    "Mistral models",
    "Database",
]
PERSONAS_TOML = """
[personas.support]
system_prompt = "You help customers."
model = "mistral-small-latest"

[personas.plain]
system_prompt = "You answer plainly."

[channels]
C0SUPPORT = "support"
"""


@pytest.fixture(params=["http", "socket"])
def env(
    request: pytest.FixtureRequest, slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path
) -> dict[str, str]:
    """The settings the bot's own end-to-end tests run with, in HTTP mode or in Socket Mode."""
    return Harness(slack, mistral, tmp_path, request.param).base_env()


async def doctor(env: dict[str, str]) -> tuple[int, dict[str, str]]:
    """The exit status, and each line by the name of its check (in the printed order)."""
    out = io.StringIO()
    status = await asyncio.to_thread(run_doctor, env, out)
    lines = out.getvalue().splitlines()
    names = [line[2:].split(":", 1)[0] for line in lines]
    assert names == NAMES, lines
    return status, dict(zip(names, lines, strict=True))


async def migrate(env: dict[str, str], *personas: tuple[str, Persona]) -> None:
    """Open the store once, as the bot's first start does, and keep `personas` as channels' `/persona` choices."""
    store = await open_store(load_settings(env))
    try:
        for channel, persona in personas:
            await store.set_channel_persona(fs.TEAM, channel, persona, "U0ADA")
    finally:
        await store.close()


def write_personas(env: dict[str, str], toml: str) -> None:
    Path(env["PERSONAS_FILE"]).write_text(toml)


def sqlite_path(env: dict[str, str]) -> Path:
    return Path(env["DATABASE_URL"].removeprefix("sqlite:///"))


def files(env: dict[str, str]) -> dict[str, bytes]:
    """The SQLite database's files (-wal and -shm too) and their bytes: the doctor must leave them as they were."""
    if not env["DATABASE_URL"].startswith("sqlite"):
        return {}
    return {p.name: p.read_bytes() for p in sqlite_path(env).parent.glob("bot.db*")}


def applied(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return sorted(name for (name,) in db.execute("SELECT name FROM migrations"))


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


# all good ------------------------------------------------------------------------------------------------


async def test_all_good(env: dict[str, str]) -> None:
    write_personas(env, PERSONAS_TOML)
    await migrate(env, ("C0TINY", Persona("Be brief.", ModelParams(model="tiny-test-model"))))
    before = files(env)

    status, lines = await doctor(env)

    assert status == 0, lines
    assert files(env) == before
    assert all(line.startswith("✓ ") for line in lines.values()), lines
    mode = "Socket Mode" if "SLACK_APP_TOKEN" in env else f"HTTP mode on port {env['PORT']}"
    assert lines["Settings"] == f"✓ Settings: parsed ({mode}, SQLite)"
    assert lines["Personas file"] == f"✓ Personas file: {env['PERSONAS_FILE']}: 2 personas, 1 channel default"
    assert lines["Slack bot token"] == "✓ Slack bot token: workspace Test (T0TEAM), bot @mistral (U0BOT)"
    assert lines["Slack scopes"] == "✓ Slack scopes: all 12 scopes manifest.yml asks for are granted"
    if "SLACK_APP_TOKEN" in env:
        assert lines["Slack connection"] == "✓ Slack connection: the app token opens a Socket Mode connection"
    else:
        assert lines["Slack connection"] == (
            "✓ Slack connection: HTTP mode, SLACK_SIGNING_SECRET is set to check Slack's requests"
        )
    assert lines["Mistral API key"] == "✓ Mistral API key: accepted (3 model names listed)"
    assert lines["Mistral models"] == (
        "✓ Mistral models: mistral-large-latest 131,072 tokens of context (default); "
        'mistral-small-latest 32,768 tokens of context (persona "support"); '
        "tiny-test-model 1,024 tokens of context (channel C0TINY, /persona set)"
    )
    assert lines["Database"] == (
        f"✓ Database: SQLite at {sqlite_path(env)}: reachable and migrated ({len(MIGRATIONS)} migrations)"
    )


async def test_a_database_not_created_yet_passes_and_stays_uncreated(env: dict[str, str]) -> None:
    status, lines = await doctor(env)

    assert status == 0, lines
    path = sqlite_path(env)
    assert lines["Database"] == f"✓ Database: SQLite at {path}: not created yet; the bot creates it at its first start"
    assert lines["Personas file"] == (
        f"✓ Personas file: {env['PERSONAS_FILE']} not present: every channel uses the default persona"
    )
    assert not path.exists() and not list(path.parent.glob("bot.db*"))


async def test_all_good_on_postgresql(env: dict[str, str], database_url: str) -> None:  # noqa: F811
    env["DATABASE_URL"] = database_url
    await migrate(env, ("C0TINY", Persona("Be brief.", ModelParams(model="tiny-test-model"), "tiny")))

    status, lines = await doctor(env)

    assert status == 0, lines
    assert all(line.startswith("✓ ") for line in lines.values()), lines
    assert lines["Database"] == (
        f"✓ Database: PostgreSQL at 127.0.0.1:5432/test: reachable and migrated ({len(MIGRATIONS)} migrations)"
    )
    assert 'tiny-test-model 1,024 tokens of context (channel C0TINY, persona "tiny")' in lines["Mistral models"]


# Slack ---------------------------------------------------------------------------------------------------


async def test_a_bad_bot_token(env: dict[str, str]) -> None:
    await migrate(env)
    env["SLACK_BOT_TOKEN"] = "xoxb-not-the-right-one"

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Slack bot token"] == (
        f"✗ Slack bot token: Slack refused SLACK_BOT_TOKEN (invalid_auth) → {BOT_TOKEN_HELP}"
    )
    assert lines["Slack scopes"] == "– Slack scopes: not run (needs a working bot token)"
    assert lines["Mistral API key"].startswith("✓ ") and lines["Database"].startswith("✓ ")


async def test_a_missing_scope(env: dict[str, str], slack: fs.FakeSlack) -> None:
    await migrate(env)
    slack.scopes -= {"files:read", "users:read"}
    slack.scopes.add("reactions:write")  # an extra scope is fine

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Slack scopes"] == (
        "✗ Slack scopes: missing files:read, users:read → add them under OAuth & Permissions "
        "(or paste manifest.yml again) and reinstall the app"
    )
    assert [name for name, line in lines.items() if not line.startswith("✓ ")] == ["Slack scopes"]


async def test_a_bad_app_token_in_socket_mode(slack: fs.FakeSlack, mistral: fm.FakeMistral, tmp_path: Path) -> None:
    env = {**Harness(slack, mistral, tmp_path, "socket").base_env(), "SLACK_APP_TOKEN": "xapp-not-the-right-one"}
    await migrate(env)

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Slack connection"] == (
        f"✗ Slack connection: Slack refused SLACK_APP_TOKEN (invalid_auth) → {APP_TOKEN_HELP}"
    )


async def test_an_unreachable_slack(env: dict[str, str]) -> None:
    await migrate(env)
    env["SLACK_API_URL"] = f"http://127.0.0.1:{closed_port()}/api/"

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Slack bot token"] == (
        "✗ Slack bot token: cannot reach Slack (ClientConnectorError) → check SLACK_API_URL and the network"
    )
    assert lines["Slack scopes"].startswith("– ")
    if "SLACK_APP_TOKEN" in env:
        assert lines["Slack connection"].startswith("✗ Slack connection: cannot reach Slack")


def test_scopes_unknown_without_the_header() -> None:
    identity = SlackIdentity("Test", fs.TEAM, "mistral", fs.BOT_USER, scopes=None)
    assert format_check(check_scopes(identity)) == (
        "✗ Slack scopes: Slack sent no x-oauth-scopes header with auth.test, so the granted scopes are unknown "
        "→ check that SLACK_API_URL is Slack's Web API"
    )


def test_the_required_scopes_are_the_manifests() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == REQUIRED_SCOPES


# Mistral -------------------------------------------------------------------------------------------------


async def test_a_bad_mistral_key(env: dict[str, str]) -> None:
    await migrate(env)
    env["MISTRAL_API_KEY"] = "not-the-right-key"

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Mistral API key"] == (
        "✗ Mistral API key: the key was refused (HTTP 401: Unauthorized) "
        "→ set MISTRAL_API_KEY to a key of your Mistral workspace"
    )
    assert lines["Mistral models"] == "– Mistral models: not run (needs a working Mistral API key)"


async def test_an_unreachable_mistral(env: dict[str, str]) -> None:
    await migrate(env)
    env["MISTRAL_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Mistral API key"] == (
        "✗ Mistral API key: cannot reach the Mistral API (ConnectError) → check MISTRAL_BASE_URL and the network"
    )
    assert lines["Mistral models"].startswith("– ")


async def test_an_unknown_default_model(env: dict[str, str]) -> None:
    await migrate(env)
    env["MISTRAL_MODEL"] = "mistral-hyper-latest"

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Mistral models"] == (
        "✗ Mistral models: unknown model mistral-hyper-latest (default) "
        "→ set MISTRAL_MODEL to one of: mistral-large-latest, mistral-small-latest, tiny-test-model"
    )
    assert [name for name, line in lines.items() if not line.startswith("✓ ")] == ["Mistral models"]


async def test_an_unknown_model_of_a_persona_and_of_a_channel(env: dict[str, str]) -> None:
    write_personas(env, PERSONAS_TOML + '\n[personas.pirate]\nsystem_prompt = "Arr."\nmodel = "mistral-hyper-latest"\n')
    await migrate(env, ("C0OLD", Persona("Old.", ModelParams(model="mistral-retired-2312"), "old")))

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Mistral models"] == (
        '✗ Mistral models: unknown model mistral-hyper-latest (persona "pirate"); '
        'unknown model mistral-retired-2312 (channel C0OLD, persona "old") '
        "→ set the persona's model or the channel's persona (/persona use or reset there) to one of: "
        "mistral-large-latest, mistral-small-latest, tiny-test-model"
    )


def test_models_are_found_by_alias_and_an_unlisted_size_is_said() -> None:
    available = {"mistral-large-2411": 131_072, "mistral-large-latest": 131_072, "local-model": None}
    uses = {"mistral-large-latest": ["default"], "local-model": ['persona "local"']}
    assert check_models(available, uses) == Check(
        "Mistral models",
        True,
        "mistral-large-latest 131,072 tokens of context (default); "
        'local-model context size not listed (persona "local")',
    )


def test_a_long_model_list_offers_the_latest_aliases() -> None:
    available: dict[str, int | None] = {f"model-{n:02}": 1_000 for n in range(20)}
    available |= {"mistral-large-latest": 1_000, "mistral-small-latest": 1_000}
    check = check_models(available, {"nope": ["default"]})
    assert check.fix == (
        "set MISTRAL_MODEL to one of: mistral-large-latest, mistral-small-latest, … (22 in GET /v1/models)"
    )


# the database --------------------------------------------------------------------------------------------


async def test_an_unreachable_database(env: dict[str, str]) -> None:
    port = closed_port()
    env["DATABASE_URL"] = f"postgresql://postgres:pg-secret-pw@127.0.0.1:{port}/test"

    status, lines = await doctor(env)

    assert status == 1
    line = lines["Database"]
    where = f"PostgreSQL at 127.0.0.1:{port}/test"
    assert line.startswith(f"✗ Database: cannot reach the database, {where} (OperationalError: "), line
    assert line.endswith("→ check DATABASE_URL and that the database server runs")
    assert "pg-secret-pw" not in line
    assert [name for name, line in lines.items() if not line.startswith("✓ ")] == ["Database"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_pending_migrations_are_named_and_left_pending(
    env: dict[str, str], backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("database_url")
    await migrate(env)
    later = [step.__name__ for step in MIGRATIONS[-2:]]
    await forget(env, later)
    before = files(env)

    status, lines = await doctor(env)

    assert status == 1
    where = f"SQLite at {sqlite_path(env)}" if backend == "sqlite" else "PostgreSQL at 127.0.0.1:5432/test"
    assert lines["Database"] == (
        f"✗ Database: {where}: 2 migrations pending: {', '.join(later)} → start the bot once (it migrates on start)"
    )
    assert not set(later) & set(await recorded(env))  # the doctor migrated nothing
    assert files(env) == before


async def test_a_schema_newer_than_the_bot(env: dict[str, str]) -> None:
    await migrate(env)
    with closing(sqlite3.connect(sqlite_path(env))) as db, db:
        db.execute("INSERT INTO migrations (name, applied_at) VALUES ('m999_from_the_future', 0)")

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Database"] == (
        "✗ Database: the database schema is newer than this version of the bot: it has migration "
        "m999_from_the_future, which this version does not know → run the newer version (or a database of this one)"
    )


async def test_an_empty_postgresql_database_passes_and_stays_empty(env: dict[str, str], database_url: str) -> None:  # noqa: F811
    env["DATABASE_URL"] = database_url

    status, lines = await doctor(env)

    assert status == 0, lines
    assert lines["Database"] == (
        "✓ Database: PostgreSQL at 127.0.0.1:5432/test: not created yet; the bot creates it at its first start"
    )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT to_regclass('migrations')")
        assert await cursor.fetchone() == (None,)


async def forget(env: dict[str, str], names: list[str]) -> None:
    """Drop `names` from the migrations table, as if this version's newest migrations had never run."""
    if env["DATABASE_URL"].startswith("sqlite"):
        # Closed (not only committed) before the doctor runs, so the WAL is folded back into the file.
        with closing(sqlite3.connect(sqlite_path(env))) as db, db:
            db.executemany("DELETE FROM migrations WHERE name = ?", [(n,) for n in names])
        return
    async with await psycopg.AsyncConnection.connect(env["DATABASE_URL"], autocommit=True) as conn:
        await conn.execute("DELETE FROM migrations WHERE name = ANY(%s)", (names,))


async def recorded(env: dict[str, str]) -> list[str]:
    if env["DATABASE_URL"].startswith("sqlite"):
        return applied(sqlite_path(env))
    async with await psycopg.AsyncConnection.connect(env["DATABASE_URL"]) as conn:
        cursor = await conn.execute("SELECT name FROM migrations")
        return [name for (name,) in await cursor.fetchall()]


# settings and secrets ------------------------------------------------------------------------------------


async def test_settings_that_do_not_parse(env: dict[str, str]) -> None:
    del env["MISTRAL_API_KEY"]

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Settings"] == (
        "✗ Settings: MISTRAL_API_KEY is required but not set → set it in the environment or the env file "
        "(see .env.example)"
    )
    for name in NAMES[1:]:
        assert lines[name] == f"– {name}: not run (the settings do not parse)"


async def test_a_broken_personas_file(env: dict[str, str]) -> None:
    await migrate(env)
    write_personas(env, "[personas.pirate]\nmodel = 'mistral-large-latest'\n")

    status, lines = await doctor(env)

    assert status == 1
    assert lines["Personas file"] == (
        f"✗ Personas file: {env['PERSONAS_FILE']}: [personas.pirate] needs a non-empty system_prompt "
        "→ fix PERSONAS_FILE (personas.example.toml shows how)"
    )


async def test_no_line_ever_holds_a_secret(env: dict[str, str], database_url: str) -> None:  # noqa: F811
    """Good secrets and refused ones, and a password in DATABASE_URL: the checks themselves never quote them."""
    await migrate({**env, "DATABASE_URL": database_url})
    good = {**env, "DATABASE_URL": database_url.replace("postgres@", "postgres:trust-ignores-this-pw@")}
    bad = {
        **env,
        "SLACK_BOT_TOKEN": "xoxb-refused-bot-token-123",
        "SLACK_APP_TOKEN": "xapp-refused-app-token-456",
        "SLACK_SIGNING_SECRET": "signing-secret-789",
        "MISTRAL_API_KEY": "refused-mistral-key-000",
        "DATABASE_URL": f"postgresql://postgres:unreachable-pw@127.0.0.1:{closed_port()}/test",
    }
    for settings in (good, bad):
        secrets = [settings[name] for name in ("SLACK_BOT_TOKEN", "MISTRAL_API_KEY", "DATABASE_URL")]
        secrets += [settings.get("SLACK_APP_TOKEN", fs.APP_TOKEN), settings["SLACK_SIGNING_SECRET"]]
        secrets += ["trust-ignores-this-pw", "unreachable-pw"]
        raw = "\n".join(format_check(check) for check in await diagnose(settings))
        _, lines = await doctor(settings)
        printed = "\n".join(lines.values())
        for secret in secrets:
            assert secret not in raw and secret not in printed
    assert lines["Slack bot token"].startswith("✗ ") and lines["Database"].startswith("✗ ")
