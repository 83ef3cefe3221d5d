"""The fake Slack's AI-experience surfaces, driven over HTTP by slack_sdk and Bolt as the bot will drive them.

These pin the fake to the real Slack's documented behaviour, so that bot tests which pass against it mean
something: loading states and when they clear, agent-view prompts and titles, the Home tab, thread history
as unlisted apps get it, people stopping a stream, and interactive payloads delivered as Slack delivers them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.conftest import until
from tests.fakes import slack as fs

CHANNEL = "C0GENERAL"
DM = "D0ADA"


@pytest.fixture
def client(slack: fs.FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)


async def refused(call: Any) -> dict[str, Any]:
    """The body of a call that Slack answers `ok: false` (slack_sdk raises on those)."""
    with pytest.raises(SlackApiError) as caught:
        await call
    return dict(caught.value.response.data)


def question(slack: fs.FakeSlack, channel: str = CHANNEL) -> str:
    return slack.user_message(channel, "U0ADA", "What is a monad?")["ts"]


# loading states ---------------------------------------------------------------------------------------------


async def test_a_status_shows_until_the_app_posts_in_that_thread(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    ts, other = question(slack), question(slack)
    loading = ["Reading the thread…", "Asking Mistral…"]
    await client.assistant_threads_setStatus(
        channel_id=CHANNEL, thread_ts=ts, status="is thinking…", loading_messages=loading
    )
    await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=other, status="is thinking…")
    assert slack.status_of(CHANNEL, ts) == "is thinking…"
    assert slack.status_history(CHANNEL, ts)[0].loading_messages == tuple(loading)

    await client.chat_postMessage(channel=CHANNEL, thread_ts=ts, text="A monad is…")
    assert slack.status_of(CHANNEL, ts) == ""
    assert slack.status_of(CHANNEL, other) == "is thinking…"  # a post elsewhere clears nothing
    await client.chat_postMessage(channel=CHANNEL, text="top level")
    assert slack.status_of(CHANNEL, other) == "is thinking…"

    await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=ts, status="is still thinking…")
    assert slack.status_of(CHANNEL, ts) == "is still thinking…"  # set after the post: shown again
    assert [c.text for c in slack.status_history(CHANNEL, ts)] == ["is thinking…", "is still thinking…"]


async def test_a_native_stream_clears_the_status_and_so_does_an_empty_one(
    slack: fs.FakeSlack, client: AsyncWebClient
) -> None:
    ts, other = question(slack), question(slack)
    for thread in (ts, other):
        await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=thread, status="is thinking…")
    await client.chat_startStream(
        channel=CHANNEL, thread_ts=ts, recipient_user_id="U0ADA", recipient_team_id=fs.TEAM, markdown_text="A"
    )
    assert slack.status_of(CHANNEL, ts) == ""
    await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=other, status="")
    assert slack.status_of(CHANNEL, other) == ""


async def test_a_status_expires_after_its_time(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    assert slack.status_ttl == 120.0
    slack.status_ttl = 0.2
    ts = question(slack)
    await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=ts, status="is thinking…")
    assert slack.status_of(CHANNEL, ts) == "is thinking…"
    await until(lambda: slack.status_of(CHANNEL, ts) == "", timeout=2, message="the status to expire")


@pytest.mark.parametrize(
    "loading_messages",
    [[], [f"step {i}" for i in range(11)], ["x" * 51], ["fine", ""], ["fine", 3]],
    ids=["empty", "eleven", "too-long", "blank", "not-a-string"],
)
async def test_bad_loading_messages_are_invalid_arguments(
    slack: fs.FakeSlack, client: AsyncWebClient, loading_messages: list[Any]
) -> None:
    ts = question(slack)
    body = await refused(
        client.assistant_threads_setStatus(
            channel_id=CHANNEL, thread_ts=ts, status="is thinking…", loading_messages=loading_messages
        )
    )
    assert body["error"] == "invalid_arguments"
    assert body["response_metadata"]["messages"]
    assert slack.status_of(CHANNEL, ts) == "" and not slack.status_history(CHANNEL, ts)


async def test_ten_loading_messages_of_fifty_characters_are_fine(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    ts = question(slack)
    loading = [f"{i}" + "x" * 49 for i in range(10)]
    await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=ts, status="…", loading_messages=loading)
    assert slack.status_history(CHANNEL, ts)[-1].loading_messages == tuple(loading)


async def test_status_errors_for_refused_unreadable_and_malformed_threads(
    slack: fs.FakeSlack, client: AsyncWebClient
) -> None:
    ts = question(slack)
    slack.status_refused.add(CHANNEL)
    body = await refused(client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=ts, status="…"))
    assert body["error"] == "channel_type_not_supported"
    slack.status_refusal = "missing_scope"
    body = await refused(client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=ts, status="…"))
    assert body["error"] == "missing_scope"
    await client.assistant_threads_setStatus(channel_id=DM, thread_ts=ts, status="…")  # other channels are fine

    slack.not_in_channel.add("C0PRIVATE")
    body = await refused(client.assistant_threads_setStatus(channel_id="C0PRIVATE", thread_ts=ts, status="…"))
    assert body["error"] == "not_in_channel"
    body = await refused(client.assistant_threads_setStatus(channel_id=DM, thread_ts="yesterday", status="…"))
    assert body["error"] == "invalid_thread_ts"
    body = await refused(client.api_call("assistant.threads.setStatus", json={"channel_id": DM, "status": "…"}))
    assert body["error"] == "invalid_arguments"
    assert [c.error for c in slack.calls_to("assistant.threads.setStatus")] == [
        "channel_type_not_supported",
        "missing_scope",
        None,
        "not_in_channel",
        "invalid_thread_ts",
        "invalid_arguments",
    ]


# agent view: suggested prompts and titles -------------------------------------------------------------------


def prompts(n: int) -> list[dict[str, str]]:
    return [{"title": f"Idea {i}", "message": f"Tell me about {i}"} for i in range(n)]


async def test_suggested_prompts_without_thread_ts_land_in_the_messages_tab(
    slack: fs.FakeSlack, client: AsyncWebClient
) -> None:
    await client.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=prompts(4), title="Try one")
    shown = slack.prompts_for(DM)
    assert shown is not None
    assert shown.title == "Try one" and list(shown.prompts) == prompts(4)
    assert slack.prompts_for("D0BOB") is None


async def test_suggested_prompts_with_thread_ts_are_accepted_and_change_nothing(
    slack: fs.FakeSlack, client: AsyncWebClient
) -> None:
    await client.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=prompts(1))
    response = await client.assistant_threads_setSuggestedPrompts(
        channel_id=DM, thread_ts=question(slack, DM), prompts=prompts(3), title="Ignored"
    )
    assert response["ok"] is True
    shown = slack.prompts_for(DM)
    assert shown is not None and list(shown.prompts) == prompts(1) and shown.title is None


@pytest.mark.parametrize(
    "bad", [prompts(5), [], [{"title": "No message"}], [{"title": "", "message": "blank title"}]], ids=str
)
async def test_bad_suggested_prompts_are_invalid_arguments(
    slack: fs.FakeSlack, client: AsyncWebClient, bad: list[dict[str, str]]
) -> None:
    body = await refused(client.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=bad))
    assert body["error"] == "invalid_arguments"
    assert slack.prompts_for(DM) is None


async def test_thread_titles_are_kept_and_need_a_title(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    # slack_sdk's assistant_threads_setTitle() puts its arguments in the query string, which the fake does not
    # read (FakeSlack._api parses the body only): send them in the body, as the bot's SlackApi.call does.
    ts = question(slack, DM)
    title = {"channel_id": DM, "thread_ts": ts, "title": "Monads, briefly"}
    await client.api_call("assistant.threads.setTitle", json=title)
    assert slack.title_of(DM, ts) == "Monads, briefly"
    body = await refused(client.api_call("assistant.threads.setTitle", data={**title, "title": ""}))
    assert body["error"] == "invalid_arguments"
    assert slack.title_of(DM, ts) == "Monads, briefly"


# the Home tab -----------------------------------------------------------------------------------------------


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_views_publish_keeps_the_last_home_view_per_user(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    first = await client.views_publish(user_id="U0ADA", view={"type": "home", "blocks": [section("Hello")]})
    view = first["view"]
    assert view["type"] == "home" and view["id"] and view["hash"]
    second = await client.views_publish(
        user_id="U0ADA", view={"type": "home", "blocks": [section("Usage: 3 answers")]}, hash=view["hash"]
    )
    assert second["view"]["id"] == view["id"] and second["view"]["hash"] != view["hash"]
    home = slack.home_view("U0ADA")
    assert home is not None and home["blocks"] == [section("Usage: 3 answers")]
    assert slack.home_view("U0BOB") is None
    body = await refused(client.views_publish(user_id="U0ADA", view={"type": "home", "blocks": []}, hash=view["hash"]))
    assert body["error"] == "hash_conflict"  # a stale hash: someone published in between


async def test_views_publish_takes_a_view_as_json_text_in_a_form(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    view = json.dumps({"type": "home", "blocks": [section("From a form")]})
    await client.api_call("views.publish", data={"user_id": "U0BOB", "view": view})
    home = slack.home_view("U0BOB")
    assert home is not None and home["blocks"] == [section("From a form")]


@pytest.mark.parametrize(
    "view",
    [
        {"type": "modal", "blocks": [section("Not home")]},
        {"type": "home", "blocks": [section(str(i)) for i in range(101)]},
        {"type": "home"},
        {"type": "home", "blocks": [{"text": "no type"}]},
        "not json",
    ],
    ids=["modal", "101-blocks", "no-blocks", "untyped-block", "not-json"],
)
async def test_views_publish_refuses_what_slack_refuses(
    slack: fs.FakeSlack, client: AsyncWebClient, view: dict[str, Any] | str
) -> None:
    body = await refused(client.api_call("views.publish", json={"user_id": "U0ADA", "view": view}))
    assert body["error"] == "invalid_arguments"
    assert any("json-pointer:/view" in m for m in body["response_metadata"]["messages"])
    assert slack.home_view("U0ADA") is None


async def test_a_hundred_blocks_is_fine(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    await client.views_publish(user_id="U0ADA", view={"type": "home", "blocks": [section("b")] * 100})
    home = slack.home_view("U0ADA")
    assert home is not None and len(home["blocks"]) == 100


# conversations.replies ----------------------------------------------------------------------------------------


def long_thread(slack: fs.FakeSlack, replies: int) -> str:
    root = question(slack)
    for i in range(replies):
        slack.user_message(CHANNEL, "U0BOB", f"reply {i}", thread_ts=root)
    return root


async def replies(client: AsyncWebClient, channel: str, ts: str, **extra: Any) -> dict[str, Any]:
    # The bot sends JSON bodies (slack_sdk's conversations_replies() uses GET, which the fake does not route).
    response = await client.api_call("conversations.replies", json={"channel": channel, "ts": ts, **extra})
    return dict(response.data)  # type: ignore[arg-type]


async def test_replies_by_default_return_the_whole_thread(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    root = long_thread(slack, 19)
    first = await replies(client, CHANNEL, root, limit=100)
    assert len(first["messages"]) == 20 and first["has_more"] is False
    assert first["messages"][0]["ts"] == root
    again = await replies(client, CHANNEL, root)  # no limit of calls by default
    assert len(again["messages"]) == 20


async def test_replies_page_with_limit_and_cursor(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    root = long_thread(slack, 9)
    page = await replies(client, CHANNEL, root, limit=4)
    seen = [m["text"] for m in page["messages"]]
    while page["has_more"]:
        page = await replies(client, CHANNEL, root, limit=4, cursor=page["response_metadata"]["next_cursor"])
        seen += [m["text"] for m in page["messages"]]
    assert seen == ["What is a monad?"] + [f"reply {i}" for i in range(9)]


async def test_unlisted_apps_get_one_request_a_minute_and_fifteen_messages(
    slack: fs.FakeSlack, client: AsyncWebClient
) -> None:
    root = long_thread(slack, 19)
    slack.retry_after = 60
    slack.limit_thread_history()
    first = await replies(client, CHANNEL, root, limit=100)
    assert len(first["messages"]) == 15 and first["has_more"] is True
    assert first["response_metadata"]["next_cursor"]
    with pytest.raises(SlackApiError) as caught:
        await replies(client, CHANNEL, root, limit=100)
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "60"
    assert caught.value.response["error"] == "ratelimited"
    assert [c.status for c in slack.calls_to("conversations.replies")] == [200, 429]


async def test_replies_refuse_conversations_the_bot_cannot_read(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    root = question(slack)
    slack.not_in_channel.add(CHANNEL)
    body = await refused(replies(client, CHANNEL, root))
    assert body["error"] == "not_in_channel"
    slack.not_in_channel.discard(CHANNEL)
    slack.not_joined.add(CHANNEL)
    assert (await refused(replies(client, CHANNEL, root)))["error"] == "not_in_channel"
    slack.not_joined.discard(CHANNEL)
    assert (await refused(replies(client, "", root)))["error"] == "channel_not_found"
    assert (await refused(replies(client, CHANNEL, "1.000001")))["error"] == "thread_not_found"
    assert (await replies(client, CHANNEL, root))["ok"] is True


# people stopping a native stream -----------------------------------------------------------------------------


async def test_a_person_stops_a_stream_and_the_message_keeps_what_it_showed(
    slack: fs.FakeSlack, client: AsyncWebClient
) -> None:
    ts = question(slack)
    started = await client.chat_startStream(
        channel=CHANNEL, thread_ts=ts, recipient_user_id="U0ADA", recipient_team_id=fs.TEAM, markdown_text="A monad"
    )
    other = await client.chat_startStream(
        channel=CHANNEL, thread_ts=ts, recipient_user_id="U0ADA", recipient_team_id=fs.TEAM, markdown_text="B"
    )
    await client.chat_appendStream(channel=CHANNEL, ts=started["ts"], markdown_text=" is")
    slack.stop_stream_by_user(CHANNEL, started["ts"], "U0ADA")
    assert slack.stopped_by_user(CHANNEL, started["ts"]) == "stopped_by_user"
    assert slack.stopped_by_user(CHANNEL, other["ts"]) is None
    message = slack.messages[(CHANNEL, started["ts"])]
    assert message.text == "A monad is" and not message.streaming
    assert slack.streams_stopped_by_user == {(CHANNEL, started["ts"]): "U0ADA"}
    with pytest.raises(ValueError):
        slack.stop_stream_by_user(CHANNEL, started["ts"], "U0ADA")  # already over


# interactivity -----------------------------------------------------------------------------------------------


class Recorder:
    """A stand-in app endpoint that keeps each request as it arrived."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(text="")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/slack/events"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    r = Recorder()
    await r.start()
    yield r
    await r.stop()


async def answered_thread(slack: fs.FakeSlack, client: AsyncWebClient) -> tuple[str, str]:
    ts = question(slack)
    answer = await client.chat_postMessage(channel=CHANNEL, thread_ts=ts, text="A monad is a monoid…")
    return ts, str(answer["ts"])


async def test_feedback_clicks_arrive_form_encoded_and_signed(
    slack: fs.FakeSlack, client: AsyncWebClient, recorder: Recorder
) -> None:
    ts, answer = await answered_thread(slack, client)
    payload = slack.block_action(
        "U0ADA", CHANNEL, answer, ts, "answer_feedback", "good", action_type="feedback_buttons"
    )
    status, _ = await slack.deliver_interactive_http(recorder.url, payload)
    assert status == 200
    [(headers, body)] = recorder.requests
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    signed = f"v0:{headers['X-Slack-Request-Timestamp']}:".encode() + body
    expected = "v0=" + hmac.new(fs.SIGNING_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Slack-Signature"], expected)
    form = parse_qs(body.decode())
    assert list(form) == ["payload"]
    sent = json.loads(form["payload"][0])
    assert sent == payload and slack.interactions == [payload]

    assert sent["type"] == "block_actions" and sent["team"]["id"] == fs.TEAM and sent["api_app_id"]
    assert sent["user"] == {"id": "U0ADA", "username": "u0ada", "name": "Ada", "team_id": fs.TEAM}
    assert sent["container"] == {
        "type": "message",
        "message_ts": answer,
        "channel_id": CHANNEL,
        "is_ephemeral": False,
        "thread_ts": ts,
    }
    assert sent["channel"]["id"] == CHANNEL
    assert sent["message"]["text"] == "A monad is a monoid…" and sent["message"]["thread_ts"] == ts
    assert sent["message"]["bot_id"] == fs.BOT_ID
    [action] = sent["actions"]
    assert action["type"] == "feedback_buttons" and action["value"] == "good"
    assert action["action_id"] == "answer_feedback" and action["block_id"] and action["action_ts"]
    assert sent["response_url"].startswith(slack.url) and sent["trigger_id"]


async def test_a_message_shortcut_payload_names_the_message(slack: fs.FakeSlack, client: AsyncWebClient) -> None:
    ts, answer = await answered_thread(slack, client)
    payload = slack.message_shortcut("U0BOB", CHANNEL, answer, ts, "explain_message")
    assert payload["type"] == "message_action" and payload["callback_id"] == "explain_message"
    assert payload["message_ts"] == answer and payload["message"]["text"] == "A monad is a monoid…"
    assert payload["channel"] == {"id": CHANNEL, "name": "general"}
    assert payload["user"]["id"] == "U0BOB" and payload["user"]["team_id"] == fs.TEAM
    assert payload["team"]["id"] == fs.TEAM
    for key in ("response_url", "trigger_id", "action_ts"):
        assert payload[key]
    other = slack.message_shortcut("U0BOB", CHANNEL, answer, ts, "explain_message")
    assert other["trigger_id"] != payload["trigger_id"] and other["response_url"] != payload["response_url"]


async def test_interactive_payloads_reach_the_app_over_socket_mode(slack: fs.FakeSlack) -> None:
    payload = slack.message_shortcut("U0ADA", DM, question(slack, DM), None, "explain_message")
    received: list[dict[str, Any]] = []

    async def app() -> None:
        url = slack.url.replace("http", "ws") + "/socket"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            assert (await ws.receive_json())["type"] == "hello"
            envelope = await ws.receive_json()
            received.append(envelope)
            await ws.send_json({"envelope_id": envelope["envelope_id"]})
            await ws.receive()  # stay connected until the test is done

    task = asyncio.create_task(app())
    try:
        ack = await slack.deliver_interactive_socket(payload)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [envelope] = received
    assert ack == {"envelope_id": envelope["envelope_id"]}
    assert envelope["type"] == "interactive" and envelope["payload"] == payload
    assert envelope["accepts_response_payload"] is True
    assert slack.interactions == [payload]


async def test_bolt_routes_the_payloads_and_its_responses_are_recorded(
    slack: fs.FakeSlack, client: AsyncWebClient
) -> None:
    """Bolt itself accepts the fake's payloads (signature, form, routing), and respond() lands in the fake."""
    app = AsyncApp(client=client, signing_secret=fs.SIGNING_SECRET)
    seen: list[str] = []

    @app.action("answer_feedback")
    async def feedback(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        seen.append(body["actions"][0]["value"])
        await respond(text="Thanks for the feedback!", response_type="ephemeral", replace_original=False)

    @app.shortcut("explain_message")
    async def explain(ack: AsyncAck, shortcut: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        seen.append(shortcut["message"]["text"])
        await respond(delete_original=True)

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events"  # type: ignore[union-attr]
    try:
        ts, answer = await answered_thread(slack, client)
        click = slack.block_action(
            "U0ADA", CHANNEL, answer, ts, "answer_feedback", "bad", action_type="feedback_buttons"
        )
        assert (await slack.deliver_interactive_http(url, click))[0] == 200
        shortcut = slack.message_shortcut("U0ADA", CHANNEL, answer, ts, "explain_message")
        assert (await slack.deliver_interactive_http(url, shortcut))[0] == 200
        await until(lambda: len(slack.responses) == 2, message="both responses")
    finally:
        await runner.cleanup()
    assert seen == ["bad", "A monad is a monoid…"]
    [ephemeral] = slack.response_url_posts(response_type="ephemeral")
    assert ephemeral["text"] == "Thanks for the feedback!" and ephemeral["replace_original"] is False
    assert slack.responses[1]["delete_original"] is True
