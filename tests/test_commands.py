"""`/ask` and `/persona` end to end, over HTTP and Socket Mode."""

from __future__ import annotations

import pytest

from bot.config import DEFAULT_SYSTEM_PROMPT
from bot.core.personas import PersonaError
from tests.conftest import Harness
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER

CHANNEL = "C0ENG"
OTHER = "C0SALES"

PERSONAS_TOML = """
[personas.terse]
system_prompt = "Answer tersely, with code."
model = "mistral-small-latest"
temperature = 0.1
top_p = 0.8
max_tokens = 300
stop = ["END"]
random_seed = 42
safe_prompt = true

[personas.json]
system_prompt = "Answer in JSON."
response_format = "json_object"

[personas.sure]
system_prompt = "Be upbeat."
prefix = "Sure! "

[channels]
C0DEFAULTED = "terse"
"""


def system_prompt_of(request: dict) -> str:
    return request["messages"][0]["content"]


async def test_ask_posts_the_question_and_answers_in_its_thread(harness: Harness) -> None:
    await harness.start()
    ack = await harness.command("/ask", "What is a monad?", user="U0ADA", channel=CHANNEL)
    assert ack.get("text") is None  # a plain acknowledgement: the question shows in the channel
    await harness.settle()
    posted = [m for m in harness.slack.messages.values() if m.channel == CHANNEL and m.thread_ts is None]
    assert len(posted) == 1
    question = posted[0]
    assert "<@U0ADA>" in question.text and "What is a monad?" in question.text
    replies = harness.slack.bot_replies(CHANNEL, question.ts)
    assert [r.text for r in replies] == ["You said: [Ada] What is a monad?"]
    assert harness.slack.status_history(CHANNEL, question.ts)[0].at < replies[0].changed_at[0]  # loading state first
    # Replies in that thread continue the conversation like any other thread.
    follow = harness.slack.user_message(CHANNEL, "U0BOB", "simpler please", thread_ts=question.ts)
    await harness.deliver(follow)
    await harness.settle()
    sent = harness.mistral.chat_requests[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == [
        "[Ada] What is a monad?",
        "You said: [Ada] What is a monad?",
        "[Bob] simpler please",
    ]


@pytest.mark.parametrize("text", ["", "help", "  HELP "])
async def test_ask_without_a_question_answers_privately_with_usage(harness: Harness, text: str) -> None:
    await harness.start()
    ack = await harness.command("/ask", text, user="U0ADA", channel=CHANNEL)
    assert ack["response_type"] == "ephemeral" and "/ask <question>" in ack["text"]
    await harness.settle()
    assert harness.mistral.requests == [] and not harness.slack.calls_to("chat.postMessage")


@pytest.mark.parametrize("problem", ["not_in_channel", "is_archived"])
async def test_ask_where_the_bot_cannot_post_answers_in_a_dm_and_says_why(harness: Harness, problem: str) -> None:
    await harness.start()
    (harness.slack.not_in_channel if problem == "not_in_channel" else harness.slack.archived).add(CHANNEL)
    await harness.command("/ask", "Is the answer lost?", user="U0ADA", channel=CHANNEL)
    await harness.settle()
    assert len(harness.slack.responses) == 1
    note = harness.slack.responses[0]
    assert note["response_type"] == "ephemeral"
    assert ("invite" in note["text"]) if problem == "not_in_channel" else ("archived" in note["text"])
    assert "DM" in note["text"]
    dm_question = [m for m in harness.slack.messages.values() if m.channel == "D0ADA" and m.thread_ts is None]
    assert len(dm_question) == 1
    assert [r.text for r in harness.slack.bot_replies("D0ADA", dm_question[0].ts)] == [
        "You said: [Ada] Is the answer lost?"
    ]


async def test_persona_set_changes_new_threads_in_that_channel_only(harness: Harness) -> None:
    await harness.start()
    old_thread = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> before")
    await harness.deliver(harness.slack.as_mention(old_thread))
    await harness.settle()

    ack = await harness.command("/persona", "set You are a pirate.", user="U0ADA", channel=CHANNEL)
    assert ack["response_type"] == "ephemeral" and "Done" in ack["text"]
    shown = await harness.command("/persona", "", user="U0BOB", channel=CHANNEL)
    assert "You are a pirate." in shown["text"]

    new_thread = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> after")
    await harness.deliver(harness.slack.as_mention(new_thread))
    other = harness.slack.user_message(OTHER, "U0ADA", f"<@{BOT_USER}> elsewhere")
    await harness.deliver(harness.slack.as_mention(other))
    await harness.settle()
    follow_old = harness.slack.user_message(CHANNEL, "U0ADA", "still old?", thread_ts=old_thread["ts"])
    await harness.deliver(follow_old)
    await harness.settle()

    by_question = {r["messages"][-1]["content"]: system_prompt_of(r) for r in harness.mistral.chat_requests}
    assert by_question["[Ada] after"] == "You are a pirate."
    assert by_question["[Ada] elsewhere"] == DEFAULT_SYSTEM_PROMPT
    assert by_question["[Ada] still old?"] == DEFAULT_SYSTEM_PROMPT  # a thread keeps its persona


async def test_persona_survives_a_restart_and_reset_restores_the_default(harness: Harness) -> None:
    await harness.start()
    await harness.command("/persona", "set Speak French.", user="U0ADA", channel=CHANNEL)
    await harness.stop()
    await harness.start()
    shown = await harness.command("/persona", "show", user="U0ADA", channel=CHANNEL)
    assert "Speak French." in shown["text"]
    ack = await harness.command("/persona", "reset", user="U0ADA", channel=CHANNEL)
    assert "default" in ack["text"]
    event = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> bonjour")
    await harness.deliver(harness.slack.as_mention(event))
    await harness.settle()
    assert system_prompt_of(harness.mistral.chat_requests[-1]) == DEFAULT_SYSTEM_PROMPT


async def test_only_admins_change_personas_when_admins_are_set(harness: Harness) -> None:
    await harness.start(PERSONA_ADMINS="U0BOB")
    refused = await harness.command("/persona", "set Be rude.", user="U0ADA", channel=CHANNEL)
    assert "only the bot's admins" in refused["text"]
    shown = await harness.command("/persona", "", user="U0ADA", channel=CHANNEL)  # reading is for everyone
    assert "Be rude." not in shown["text"]
    allowed = await harness.command("/persona", "set Be kind.", user="U0BOB", channel=CHANNEL)
    assert "Done" in allowed["text"]


async def test_named_personas_reach_the_request_exactly_as_the_api_expects(harness: Harness) -> None:
    (harness.tmp_path / "personas.toml").write_text(PERSONAS_TOML)
    await harness.start()
    listing = await harness.command("/persona", "list", user="U0ADA", channel=CHANNEL)
    assert all(f"`{name}`" in listing["text"] for name in ("terse", "json", "sure"))
    unknown = await harness.command("/persona", "use nope", user="U0ADA", channel=CHANNEL)
    assert "no persona called `nope`" in unknown["text"]

    await harness.command("/persona", "use terse", user="U0ADA", channel=CHANNEL)
    event = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> sort a list")
    await harness.deliver(harness.slack.as_mention(event))
    await harness.settle()
    body = harness.mistral.chat_requests[-1]
    assert {k: v for k, v in body.items() if k != "messages"} == {
        "model": "mistral-small-latest",
        "stream": True,
        "temperature": 0.1,
        "top_p": 0.8,
        "max_tokens": 300,
        "stop": ["END"],
        "random_seed": 42,
        "safe_prompt": True,
        "prompt_cache_key": "1",  # the conversation's id: its growing history is served from Mistral's cache
    }
    assert system_prompt_of(body) == "Answer tersely, with code."

    # A channel default from the file applies without any command.
    defaulted = harness.slack.user_message("C0DEFAULTED", "U0ADA", f"<@{BOT_USER}> hi")
    await harness.deliver(harness.slack.as_mention(defaulted))
    await harness.settle()
    assert harness.mistral.chat_requests[-1]["model"] == "mistral-small-latest"


async def test_json_answers_are_requested_and_shown_in_a_code_block(harness: Harness) -> None:
    (harness.tmp_path / "personas.toml").write_text(PERSONAS_TOML)
    await harness.start()
    await harness.command("/persona", "use json", user="U0ADA", channel=CHANNEL)
    harness.mistral.queue(Script(chunks=['{"cheese": ', '"brie", "soft": true}']))
    event = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> a cheese as JSON")
    await harness.deliver(harness.slack.as_mention(event))
    await harness.settle()
    assert harness.mistral.chat_requests[-1]["response_format"] == {"type": "json_object"}
    reply = harness.slack.bot_replies(CHANNEL, event["ts"])[0]
    assert reply.text == '```\n{"cheese": "brie", "soft": true}\n```'


@pytest.mark.parametrize("echo", [True, False])
async def test_a_prefix_is_sent_last_and_shown_once(harness: Harness, echo: bool) -> None:
    (harness.tmp_path / "personas.toml").write_text(PERSONAS_TOML)
    await harness.start()
    await harness.command("/persona", "use sure", user="U0ADA", channel=CHANNEL)
    harness.mistral.queue(Script(chunks=["Sure", "! Here", " it is."] if echo else ["Here it is."]))
    event = harness.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> go")
    await harness.deliver(harness.slack.as_mention(event))
    await harness.settle()
    sent = harness.mistral.chat_requests[-1]["messages"]
    assert sent[-1] == {"role": "assistant", "content": "Sure! ", "prefix": True}
    assert harness.slack.bot_replies(CHANNEL, event["ts"])[0].text == "Sure! Here it is."
    # In the next turn's history the prefix message is not repeated, and the answer appears once.
    follow = harness.slack.user_message(CHANNEL, "U0ADA", "again", thread_ts=event["ts"])
    await harness.deliver(follow)
    await harness.settle()
    sent = harness.mistral.chat_requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant"]
    assert sent[2]["content"] == "Sure! Here it is."


async def test_an_unreadable_personas_file_stops_start_up_clearly(http_harness: Harness) -> None:
    (http_harness.tmp_path / "personas.toml").write_text("[personas.x\nsystem_prompt = 'y'")
    with pytest.raises(PersonaError, match="cannot read"):
        await http_harness.start()
    (http_harness.tmp_path / "personas.toml").write_text("[personas.x]\nsystem_prompt = 'y'\ntemperature = 4\n")
    with pytest.raises(PersonaError, match="temperature"):
        await http_harness.start()
