"""The project as a newcomer meets it: the manifest, the settings documentation, the Procfile."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from bot.config import load_settings
from bot.core.personas import DEFAULT_PROMPTS

ROOT = Path(__file__).parent.parent
# Slack's own manifest schema (MIT), copied into the repository: see its SOURCE.md.
MANIFEST_SCHEMA = Path(__file__).parent / "data" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"


def setting_names() -> set[str]:
    source = (ROOT / "bot" / "config.py").read_text()
    return set(re.findall(r'r\.\w+\(\s*"([A-Z][A-Z_]+)"', source))


def test_every_setting_is_documented_in_env_example_and_readme() -> None:
    names = setting_names()
    assert {"SLACK_BOT_TOKEN", "MISTRAL_API_KEY", "DATABASE_URL", "PERSONAS_FILE", "SLACK_STREAMING"} <= names
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in sorted(names):
        assert re.search(rf"^#? ?{name}=", example, re.M), f"{name} missing from .env.example"
        assert f"`{name}`" in readme, f"{name} missing from README.md"


def test_the_manifest_is_a_valid_app_for_this_bot() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    schema = json.loads(MANIFEST_SCHEMA.read_text())
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)
    assert len(manifest["display_information"]["name"]) <= 35
    assert re.fullmatch(r"[a-z0-9\-_.]+", manifest["features"]["bot_user"]["display_name"])
    home = manifest["features"]["app_home"]
    assert home["messages_tab_enabled"] is True and home["messages_tab_read_only_enabled"] is False
    assert home["home_tab_enabled"] is True
    # Agent view, not the retired assistant_view; its static prompts are the bot's built-in ones.
    agent = manifest["features"]["agent_view"]
    assert agent["agent_description"] and "assistant_view" not in manifest["features"]
    assert [(p["title"], p["message"]) for p in agent["suggested_prompts"]] == [
        (p.title, p.message) for p in DEFAULT_PROMPTS
    ]
    shortcuts = {s["callback_id"]: s for s in manifest["features"]["shortcuts"]}
    assert shortcuts["summarize_thread"]["type"] == "message"
    assert shortcuts["summarize_thread"]["name"] == "Summarize thread"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/ask", "/persona", "/usage"}
    for command in commands.values():
        assert len(command["command"]) <= 32 and command["description"]
        assert "url" not in command  # Socket Mode by default
    assert commands["/ask"]["usage_hint"] and commands["/persona"]["usage_hint"]  # /usage takes no arguments
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "app_mentions:read",
        "chat:write",
        "commands",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
        "users:read",
        "assistant:write",
    } <= scopes
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.channels", "message.groups", "message.im", "message.mpim"} <= events
    assert "app_home_opened" in events
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_the_procfile_runs_http_mode_as_web() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert lines == ["web: SLACK_APP_TOKEN= python -m bot"]
    # An empty SLACK_APP_TOKEN means HTTP mode, whatever .env says.
    settings = load_settings(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "", "SLACK_SIGNING_SECRET": "s", "MISTRAL_API_KEY": "k"}
    )
    assert not settings.socket_mode


def test_the_example_personas_file_is_valid() -> None:
    from bot.personas import load_catalog

    catalog = load_catalog(ROOT / "personas.example.toml")
    assert {"support", "engineering", "json"} <= set(catalog.named)
    assert catalog.prompts["support"] and catalog.default_prompts
