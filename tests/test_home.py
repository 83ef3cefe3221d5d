"""App Home end to end: the Messages tab's suggested prompts and the Home tab, over HTTP and Socket Mode,
and the courtesy calls' failures (logged, never raised)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent_view import set_suggested_prompts, set_thread_title
from bot.core.personas import DEFAULT_PROMPTS, SuggestedPrompt
from bot.slack.api import SlackApi
from tests.conftest import Harness
from tests.fakes import slack as fs
from tests.fakes.slack import BOT_USER, TEAM

PERSONAS_TOML = """
[[suggested_prompts]]
title = "Plan my week"
message = "Help me plan my week."

[personas.support]
system_prompt = "You help customers."
model = "mistral-small-latest"

[[personas.support.suggested_prompts]]
title = "Answer a customer"
message = "Help me answer a customer."

[[personas.support.suggested_prompts]]
title = "Troubleshoot"
message = "Walk me through troubleshooting."

[channels]
D0SUPPORT = "support"
"""


async def open_tab(harness: Harness, user: str, tab: str, channel: str) -> None:
    """Slack's `app_home_opened`, as either transport delivers it; then wait for what the bot does about it."""
    slack = harness.slack
    ts = slack.new_ts()
    event = {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": ts}
    if tab == "home":
        event["view"] = {"id": "V0HOME", "type": "home"}
    event_id = f"Ev{tab}{ts}"
    if harness.mode == "socket":
        ack = await slack.send_envelope("events_api", slack.envelope(event, event_id))
        assert "envelope_id" in ack
    else:
        status, _ = await slack.deliver_http(harness.events_url, event, event_id=event_id)
        assert status == 200, status
    await harness.settle()


def prompts(prompt_list: tuple[SuggestedPrompt, ...]) -> tuple[dict[str, str], ...]:
    return tuple({"title": p.title, "message": p.message} for p in prompt_list)


def home_text(view: dict[str, Any]) -> str:
    return "\n".join(
        b["text"]["text"] if "text" in b else " ".join(e.get("text", "") for e in b.get("elements", []))
        for b in view["blocks"]
    )


async def test_the_messages_tab_offers_built_in_prompts_without_a_personas_file(harness: Harness) -> None:
    await harness.start()
    await open_tab(harness, "U0ADA", "messages", "D0ADA")
    shown = harness.slack.prompts_for("D0ADA")
    assert shown is not None and shown.prompts == prompts(DEFAULT_PROMPTS)
    assert shown.title
    # Agent apps set prompts for the whole tab: never with a thread_ts (Slack would silently ignore them).
    (call,) = harness.slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert "thread_ts" not in call.args


async def test_the_messages_tab_offers_the_dms_persona_prompts_else_the_files_default(harness: Harness) -> None:
    (harness.tmp_path / "personas.toml").write_text(PERSONAS_TOML)
    await harness.start()
    await open_tab(harness, "U0SUP", "messages", "D0SUPPORT")
    await open_tab(harness, "U0ADA", "messages", "D0ADA")
    support = harness.slack.prompts_for("D0SUPPORT")
    assert support is not None and [p["title"] for p in support.prompts] == ["Answer a customer", "Troubleshoot"]
    other = harness.slack.prompts_for("D0ADA")
    assert other is not None and other.prompts == ({"title": "Plan my week", "message": "Help me plan my week."},)
    # A DM switched to the persona with /persona gets its prompts the next time the tab opens.
    await harness.command("/persona", "use support", user="U0ADA", channel="D0ADA")
    await open_tab(harness, "U0ADA", "messages", "D0ADA")
    again = harness.slack.prompts_for("D0ADA")
    assert again is not None and again.prompts == support.prompts


async def test_the_home_tab_lists_the_persons_threads_and_the_channels_personas(harness: Harness) -> None:
    (harness.tmp_path / "personas.toml").write_text(PERSONAS_TOML)
    await harness.start(MISTRAL_MODEL="mistral-large-latest")
    slack = harness.slack
    await harness.command("/persona", "use support", user="U0ADA", channel="C0GENERAL")
    ada = slack.user_message("C0GENERAL", "U0ADA", f"<@{BOT_USER}> Is 1 < 2 & why?")
    await harness.deliver(slack.as_mention(ada))
    dm = slack.user_message("D0ADA", "U0ADA", "hello in private", channel_type="im")
    await harness.deliver(dm)
    bob = slack.user_message("C0RANDOM", "U0BOB", f"<@{BOT_USER}> Bob's secret question")
    await harness.deliver(slack.as_mention(bob))
    await harness.settle()

    await open_tab(harness, "U0ADA", "home", "D0ADA")
    view = slack.home_view("U0ADA")
    assert view is not None and view["type"] == "home" and len(view["blocks"]) <= 100
    text = home_text(view)
    # Her threads, as links built from the workspace URL auth.test gave at start-up, newest first.
    general = f"https://test.slack.com/archives/C0GENERAL/p{ada['ts'].replace('.', '')}"
    private = f"https://test.slack.com/archives/D0ADA/p{dm['ts'].replace('.', '')}"
    assert f"<{general}|Is 1 &lt; 2 &amp; why?> in <#C0GENERAL>" in text
    assert f"<{private}|hello in private> in a DM" in text
    assert text.index(private) < text.index(general)
    assert "Bob's secret" not in text
    # Each channel's persona and model; DMs are nobody else's business.
    assert "<#C0GENERAL>: `support` persona, model `mistral-small-latest`" in text
    assert "<#C0RANDOM>: default persona, model `mistral-large-latest`" in text
    assert "<#D0ADA>" not in text
    # How to ask.
    for fragment in (f"<@{BOT_USER}>", "/ask", "/persona", "Summarize thread", "Stop", "Messages tab"):
        assert fragment in text

    # Bob has asked nothing himself: his view says so, and it is his own.
    await open_tab(harness, "U0BOB", "home", "D0BOB")
    bobs = home_text(slack.home_view("U0BOB") or {"blocks": []})
    assert "Bob's secret question" in bobs and "hello in private" not in bobs


async def test_slack_refusing_the_agent_surfaces_is_logged_and_the_bot_goes_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.start()
    slack = harness.slack
    slack.errors["assistant.threads.setSuggestedPrompts"] = deque(["missing_scope"])
    slack.errors["views.publish"] = deque(["ratelimited"])
    with caplog.at_level(logging.INFO, logger="bot"):
        await open_tab(harness, "U0ADA", "messages", "D0ADA")  # missing_scope
        await open_tab(harness, "U0ADA", "home", "D0ADA")  # an ok: false ratelimited
        assert slack.prompts_for("D0ADA") is None and slack.home_view("U0ADA") is None
        slack.limits["assistant.threads.setSuggestedPrompts"] = (1, 60.0)
        await open_tab(harness, "U0ADA", "messages", "D0ADA")  # taken
        await open_tab(harness, "U0ADA", "messages", "D0ADA")  # HTTP 429: skipped, not waited out
    assert slack.prompts_for("D0ADA") is not None
    assert "missing_scope" in caplog.text and "skipped" in caplog.text
    assert len(slack.calls_to("assistant.threads.setSuggestedPrompts")) == 3
    # The bot still answers.
    event = slack.user_message("D0ADA", "U0ADA", "still there?", channel_type="im")
    await harness.deliver(event)
    await harness.settle()
    assert [r.text for r in slack.bot_replies("D0ADA", event["ts"])] == ["You said: [Ada] still there?"]


# the helpers the conversation calls -----------------------------------------------------------------------


@pytest.fixture
async def api(slack: fs.FakeSlack) -> AsyncIterator[SlackApi]:
    async with aiohttp.ClientSession() as session:
        yield SlackApi(AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url, session=session))


async def test_a_dm_thread_is_titled_after_its_question(slack: fs.FakeSlack, api: SlackApi) -> None:
    await set_thread_title(api, TEAM, "D0ADA", "1700000001.000100", f"<@{BOT_USER}> *How* do I  undo a commit?\nx")
    assert slack.title_of("D0ADA", "1700000001.000100") == "How do I undo a commit?"
    await set_thread_title(api, TEAM, "D0ADA", "1700000002.000100", "")
    assert slack.title_of("D0ADA", "1700000002.000100") == "New conversation"


@pytest.mark.parametrize("error", ["missing_scope", "channel_not_found", "internal_error"])
async def test_a_title_slack_refuses_is_logged_not_raised(
    slack: fs.FakeSlack, api: SlackApi, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    slack.errors["assistant.threads.setTitle"] = deque([error])
    await set_thread_title(api, TEAM, "D0ADA", "1700000001.000100", "a question")
    assert slack.title_of("D0ADA", "1700000001.000100") is None
    assert error in caplog.text
    assert len(slack.calls_to("assistant.threads.setTitle")) == 1  # a courtesy is not retried


async def test_prompts_are_set_without_a_thread(slack: fs.FakeSlack, api: SlackApi) -> None:
    assert await set_suggested_prompts(api, TEAM, "D0ADA", DEFAULT_PROMPTS[:2])
    shown = slack.prompts_for("D0ADA")
    assert shown is not None and shown.title is None and shown.prompts == prompts(DEFAULT_PROMPTS[:2])
