"""Slack in at the door: whatever arrives, signed or not, well-formed or not, gets a 2xx or a 4xx and leaves the
bot serving; and `/ask` in a public channel the bot has not joined joins it, so follow-ups reach the bot."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Harness
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.slack import BOT_USER

CHANNEL = "C0DOOR"
# Apart from CHANNEL, and several: the bot paces its posts per channel, and fuzzed answers must not wait long.
FUZZ_CHANNELS = [f"C0FUZZ{i}" for i in range(8)]

# Hypothesis looks numpy up in sys.modules as it draws; the bot's tokenizer imports numpy in a thread. Imported
# here, at collection, it is never found half-imported.
with contextlib.suppress(ImportError):
    importlib.import_module("numpy")


# fuzzing the front door ------------------------------------------------------------------------------------


@dataclass
class Request:
    body: bytes
    content_type: str
    signed: bool
    headers: dict[str, str]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
# Plausible values as well as junk, so that some events get deep into the bot before something is wrong.
plausible = st.sampled_from(
    ["message", "app_mention", "message_changed", "message_deleted", "thread_broadcast", "bot_message", "D0ADA",
     "U0ADA", BOT_USER, f"<@{BOT_USER}> hi", "1700000001.000100", "im", "channel", fs.TEAM, ""]
) | st.sampled_from(FUZZ_CHANNELS)
field_value = plausible | json_values
event_keys = st.sampled_from(
    ["type", "subtype", "channel", "user", "text", "ts", "thread_ts", "channel_type", "team", "bot_id", "message",
     "previous_message", "deleted_ts", "event_ts", "files", "blocks", "edited", "hidden"]
)
events = st.dictionaries(event_keys, field_value, max_size=8) | json_values
envelope_keys = st.sampled_from(
    ["token", "team_id", "api_app_id", "type", "event_id", "event_time", "authorizations", "enterprise_id",
     "is_ext_shared_channel", "challenge", "context_team_id"]
)


@st.composite
def event_envelopes(draw: st.DrawFn) -> Request:
    envelope: dict[str, Any] = {"type": "event_callback", "team_id": fs.TEAM, "event_id": "Ev0FUZZ"}
    envelope.update(draw(st.dictionaries(envelope_keys, plausible | st.just("url_verification") | json_values)))
    if draw(st.booleans()):
        envelope["event"] = draw(events)
    body = json.dumps(envelope if draw(st.integers(0, 9)) else draw(json_values)).encode()
    return Request(body, "application/json", signed=True, headers={})


command_keys = st.sampled_from(
    ["token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name", "command", "text",
     "api_app_id", "response_url", "trigger_id", "payload", "ssl_check", "enterprise_id"]
)


@st.composite
def slash_commands(draw: st.DrawFn) -> Request:
    command = {
        "team_id": fs.TEAM,
        "channel_id": draw(st.sampled_from(FUZZ_CHANNELS)),
        "user_id": "U0ADA",
        "command": draw(st.sampled_from(["/ask", "/persona", "/nope"])),
        "text": draw(st.sampled_from(["", "help", "list", "set Be brief.", "use nope", "reset"]) | st.text()),
        "response_url": "http://127.0.0.1:9/response/1",
    }
    for key in draw(st.lists(command_keys, max_size=3)):
        command.pop(key, None)
    command.update(draw(st.dictionaries(command_keys, st.text(max_size=30) | st.just("{not json"))))
    return Request(urlencode(command).encode(), "application/x-www-form-urlencoded", signed=True, headers={})


@st.composite
def garbage(draw: st.DrawFn) -> Request:
    headers = draw(
        st.sampled_from(
            [
                {},
                {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=00"},
                {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=é"},
                {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=00"},
            ]
        )
    )
    return Request(
        draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)),
        draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", ""])),
        signed=draw(st.booleans()),
        headers=headers,
    )


requests = st.one_of(event_envelopes(), slash_commands(), garbage())


@pytest.fixture
def running_bot(tmp_path: Path) -> Iterator[tuple[asyncio.AbstractEventLoop, Harness, aiohttp.ClientSession]]:
    """The bot in HTTP mode on a loop of its own: hypothesis drives it from a plain function, request by request."""
    loop = asyncio.new_event_loop()
    slack, mistral = fs.FakeSlack(), fm.FakeMistral()
    slack.users = {"U0ADA": "Ada"}
    h = Harness(slack, mistral, tmp_path, "http")

    async def start() -> aiohttp.ClientSession:
        await slack.start()
        await mistral.start()
        await h.start()
        return aiohttp.ClientSession()

    async def stop(session: aiohttp.ClientSession) -> None:
        await session.close()
        await h.stop()
        await mistral.stop()
        await slack.stop()

    session = loop.run_until_complete(start())
    try:
        yield loop, h, session
    finally:
        loop.run_until_complete(stop(session))
        loop.close()


async def post(session: aiohttp.ClientSession, url: str, request: Request) -> int:
    headers = {"Content-Type": request.content_type, **request.headers}
    if request.signed:
        headers.update(fs.FakeSlack.sign(request.body))
    async with session.post(url, data=request.body, headers=headers) as response:
        await response.read()
        return response.status


def test_every_request_gets_a_2xx_or_4xx_and_the_bot_keeps_answering(
    running_bot: tuple[asyncio.AbstractEventLoop, Harness, aiohttp.ClientSession],
) -> None:
    loop, h, session = running_bot

    @settings(
        max_examples=200,
        derandomize=True,  # the same examples on every run: CI stays stable
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests)
    def answered_sanely(request: Request) -> None:
        status = loop.run_until_complete(post(session, h.events_url, request))
        assert 200 <= status < 500, (status, request)

    answered_sanely()

    async def a_normal_mention() -> list[str]:
        await h.settle(timeout=30)
        event = h.slack.user_message(CHANNEL, "U0ADA", f"<@{BOT_USER}> still there?")
        await h.deliver(h.slack.as_mention(event))
        await h.settle()
        return [r.text for r in h.slack.bot_replies(CHANNEL, event["ts"])]

    assert loop.run_until_complete(a_normal_mention()) == ["You said: [Ada] still there?"]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_mention", "subtype": ["bot_message"], "channel": CHANNEL, "user": "U0ADA", "ts": "1.1"},
        {"type": "message", "subtype": "message_changed", "channel": CHANNEL, "message": "not an object"},
        {"type": ["message"], "channel": CHANNEL},
    ],
)
async def test_a_malformed_event_is_acknowledged_in_either_mode(harness: Harness, event: dict[str, Any]) -> None:
    await harness.start()
    await harness.deliver({**event, "text": f"<@{BOT_USER}> hi", "ts": event.get("ts", "1.2")})
    await harness.settle()
    assert not harness.slack.calls_to("chat.postMessage")


async def test_a_failing_command_is_acknowledged_with_a_private_apology(http_harness: Harness) -> None:
    await http_harness.start()
    payload = http_harness.slack.command("/ask", "What?", user="U0ADA", channel=CHANNEL)
    del payload["channel_id"]  # the listener reads it, and fails
    status, body = await http_harness.slack.command_http(http_harness.events_url, payload)
    assert status == 200
    assert json.loads(body)["response_type"] == "ephemeral"


# /ask in a public channel the bot has not joined ------------------------------------------------------------


async def test_ask_in_a_public_channel_joins_it_so_that_replies_reach_the_bot(harness: Harness) -> None:
    h = harness
    await h.start()
    h.slack.not_joined.add(CHANNEL)  # chat:write.public lets the bot post there, but no events come from it
    await h.command("/ask", "What is a monad?", user="U0ADA", channel=CHANNEL)
    await h.settle()
    joins = h.slack.calls_to("conversations.join")
    posts = h.slack.calls_to("chat.postMessage")
    assert [c.args["channel"] for c in joins] == [CHANNEL] and joins[0].at <= posts[0].at
    assert CHANNEL not in h.slack.not_joined  # a member now: Slack sends the thread's replies to the bot
    question = next(m for m in h.slack.messages.values() if m.channel == CHANNEL and m.thread_ts is None)
    assert [r.text for r in h.slack.bot_replies(CHANNEL, question.ts)] == ["You said: [Ada] What is a monad?"]
    assert not h.slack.responses  # nothing to tell the asker privately


@pytest.mark.parametrize("error", ["missing_scope", "ratelimited"])
async def test_ask_answers_in_the_channel_even_when_joining_fails(harness: Harness, error: str) -> None:
    h = harness
    await h.start()
    h.slack.not_joined.add(CHANNEL)
    h.slack.errors["conversations.join"] = deque([error] * 5)  # e.g. an app installed before channels:join
    await h.command("/ask", "Still answered?", user="U0ADA", channel=CHANNEL)
    await h.settle()
    question = next(m for m in h.slack.messages.values() if m.channel == CHANNEL and m.thread_ts is None)
    assert [r.text for r in h.slack.bot_replies(CHANNEL, question.ts)] == ["You said: [Ada] Still answered?"]


async def test_ask_never_tries_to_join_a_dm_or_a_group(harness: Harness) -> None:
    await harness.start()
    await harness.command("/ask", "Private?", user="U0ADA", channel="G0PRIVATE")
    await harness.command("/ask", "Direct?", user="U0ADA", channel="D0ADA")
    await harness.settle()
    assert not harness.slack.calls_to("conversations.join")
