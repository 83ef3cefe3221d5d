"""Prometheus metrics: the `Metrics` API on its own, the model client's and Slack client's counts against the
loopback fakes, and `/metrics` scraped from the real bot before and after answers, in HTTP and Socket Mode.

Every scrape is parsed with prometheus_client's own parser, and every label value checked: no channel, user or
team id ever becomes a label.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.params import ModelParams, request_body
from bot.http import start_metrics_server
from bot.metrics import OUTCOMES, SLACK_RESULTS, Metrics, slack_result
from bot.mistral import ErrorKind, MistralClient, ModelError, Timeouts
from bot.slack.api import RateLimited, SlackApi, SlackCallError
from bot.slack.blocks import STOP_ACTION
from bot.storage import StoreUnavailable
from tests.conftest import Harness, free_port, until
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.mistral import Script
from tests.fakes.slack import BOT_USER, TEAM
from tests.test_answer_controls import SLOW, click

CHANNEL = "C0GENERAL"
MODEL = "tiny-test-model"
BODY: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
FAST = Timeouts(connect=0.5, idle=2.0, total=10.0, retry_budget=5.0)
# Label values that would be an id of Slack's (channel, user, team, bot) or a message's ts.
SLACK_ID = re.compile(r"^[CDGUTWB][A-Z0-9]{5,}$|^\d{10}\.\d{6}$")


class Scrape:
    """One exposition, parsed: samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def labels(self) -> Iterable[tuple[str, str]]:
        for sample in self.samples:
            yield from sample.labels.items()


def assert_bounded(scrape: Scrape, *ids: str) -> None:
    """No label carries an id of Slack's (those given, or anything shaped like one)."""
    names = {name for name, _ in scrape.labels()}
    assert not names & {"channel", "channel_id", "user", "user_id", "team", "team_id", "thread_ts", "ts"}
    for name, value in scrape.labels():
        assert value not in ids, f"{name}={value!r} is an id"
        assert not SLACK_ID.match(value), f"{name}={value!r} looks like an id"


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


# Metrics on its own ---------------------------------------------------------------------------------------


def test_every_outcome_shows_from_the_start_and_the_exposition_parses() -> None:
    metrics = Metrics()
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    scrape = Scrape(body.decode())
    for outcome in OUTCOMES:
        assert any(s.name == "bot_answers_total" and s.labels == {"outcome": outcome} for s in scrape.samples)
    assert scrape.value("bot_answers_total") == 0
    assert scrape.value("bot_answers_in_flight") == 0
    assert scrape.value("slack_pacer_waiting") == 0


def test_answers_move_the_outcome_count_in_flight_and_duration() -> None:
    metrics = Metrics()
    metrics.answer_started()
    metrics.answer_started()
    assert Scrape(metrics.exposition()[0].decode()).value("bot_answers_in_flight") == 2
    metrics.answer_finished("complete", 3.0)
    metrics.answer_finished("stopped", 1.0)
    metrics.first_token(0.4)
    scrape = Scrape(metrics.exposition()[0].decode())
    assert scrape.value("bot_answers_in_flight") == 0
    assert scrape.value("bot_answers_total", outcome="complete") == 1
    assert scrape.value("bot_answers_total", outcome="stopped") == 1
    # Only complete answers are timed: a stopped one says nothing of how long answers take.
    assert scrape.value("bot_answer_duration_seconds_count") == 1
    assert scrape.value("bot_answer_duration_seconds_sum") == 3.0
    assert scrape.value("bot_answer_duration_seconds_bucket", le="4.0") == 1
    assert scrape.value("bot_time_to_first_token_seconds_count") == 1


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError):
        Metrics().answer_finished("C0GENERAL", 1.0)


def test_an_answer_another_process_finishes_leaves_only_the_in_flight_count() -> None:
    metrics = Metrics()
    metrics.answer_started()
    metrics.answer_finished(None, 2.0)  # handed over: the process that finishes it counts how it ended
    scrape = Scrape(metrics.exposition()[0].decode())
    assert scrape.value("bot_answers_in_flight") == 0
    assert scrape.value("bot_answers_total") == 0
    assert scrape.value("bot_answer_duration_seconds_count") == 0


def test_registries_are_per_bot() -> None:
    first, second = Metrics(), Metrics()
    first.slack_call("chat.update")
    assert Scrape(second.exposition()[0].decode()).value("slack_api_calls_total") == 0


def test_model_metrics_follow_the_genai_conventions() -> None:
    metrics = Metrics()
    metrics.model_tokens(MODEL, 1000, 20, 600)
    metrics.model_tokens(MODEL, 2000, None, 0)
    metrics.model_call(MODEL, 1.5)
    metrics.model_call(MODEL, 0.1, "unavailable")
    metrics.model_retry("unavailable")
    scrape = Scrape(metrics.exposition()[0].decode())
    model = {"gen_ai_provider_name": "mistral_ai", "gen_ai_operation_name": "chat", "gen_ai_request_model": MODEL}
    usage = "gen_ai_client_token_usage"
    assert scrape.value(f"{usage}_count", gen_ai_token_type="input", **model) == 2
    assert scrape.value(f"{usage}_sum", gen_ai_token_type="input", **model) == 3000
    assert scrape.value(f"{usage}_count", gen_ai_token_type="output", **model) == 1
    assert scrape.value(f"{usage}_bucket", gen_ai_token_type="input", le="1024.0", **model) == 1
    assert scrape.value("bot_model_cached_input_tokens_total", **model) == 600
    duration = "gen_ai_client_operation_duration_seconds"
    assert scrape.value(f"{duration}_count", error_type="", **model) == 1
    assert scrape.value(f"{duration}_count", error_type="unavailable", **model) == 1
    assert scrape.value(f"{duration}_bucket", error_type="", le="2.56", **model) == 1
    assert scrape.value("bot_model_retries_total", reason="unavailable") == 1


@pytest.mark.parametrize(
    ("error", "result"),
    [
        ("", "ok"),
        ("ratelimited", "ratelimited"),
        ("msg_too_long", "msg_too_long"),
        ("not_in_channel", "not_in_channel"),
        ("internal_error", "internal_error"),
        ("http_503", "http_5xx"),
        ("http_404", "error"),
        ("unreachable: ClientConnectorError", "unreachable"),
        ("something_new_C0GENERAL", "error"),
    ],
)
def test_slack_results_are_a_bounded_set(error: str, result: str) -> None:
    metrics = Metrics()
    metrics.slack_call("chat.update", error)
    scrape = Scrape(metrics.exposition()[0].decode())
    assert scrape.value("slack_api_calls_total", method="chat.update", result=result) == 1
    assert (slack_result(error) if error else "ok") in SLACK_RESULTS


def test_the_pacer_queue_is_read_over_every_workspace_at_each_scrape() -> None:
    metrics = Metrics()
    api = SlackApi(AsyncWebClient(token="xoxb-test"), metrics=metrics)
    for team, queued in (("T1", 2), ("T2", 3)):
        api.pacer(team).waiting = lambda queued=queued: queued  # type: ignore[method-assign]
    assert Scrape(metrics.exposition()[0].decode()).value("slack_pacer_waiting") == 5


async def test_the_metrics_server_serves_metrics_and_health() -> None:
    metrics = Metrics()
    healthy = True

    async def ping() -> None:
        if not healthy:
            raise StoreUnavailable("down")

    port = free_port()
    runner = await start_metrics_server(port, metrics=metrics, ping=ping)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                assert Scrape(await response.text()).value("bot_answers_total") == 0
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            healthy = False
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 503
    finally:
        await runner.cleanup()


# The model client and the Slack client against the fakes --------------------------------------------------


def model_client(mistral: fm.FakeMistral, metrics: Metrics) -> MistralClient:
    return MistralClient(base_url=mistral.url, api_key=fm.API_KEY, timeouts=FAST, metrics=metrics)


async def test_the_model_client_measures_each_attempt_and_the_usage(mistral: fm.FakeMistral) -> None:
    metrics = Metrics()
    client = model_client(mistral, metrics)
    mistral.queue(Script(status=503, body={"detail": "Service Unavailable"}), Script(chunks=["Hel", "lo"]))
    body = {**BODY, "messages": [{"role": "user", "content": "x" * 400}], "prompt_cache_key": "7"}
    try:
        items = [item async for item in client.stream(body)]
        again = [item async for item in client.stream(body)]  # the same prompt: the cache serves all of it
    finally:
        await client.aclose()
    scrape = Scrape(metrics.exposition()[0].decode())
    first, second = mistral.usages
    assert items[-1].cached_tokens == 0 and again[-1].cached_tokens == second["prompt_tokens"] > 0  # type: ignore[union-attr]
    usage = "gen_ai_client_token_usage"
    assert scrape.value(f"{usage}_count", gen_ai_token_type="input") == 2
    assert scrape.value(f"{usage}_sum", gen_ai_token_type="input") == first["prompt_tokens"] + second["prompt_tokens"]
    assert scrape.value(f"{usage}_sum", gen_ai_token_type="output") == (
        first["completion_tokens"] + second["completion_tokens"]
    )
    assert scrape.value("bot_model_cached_input_tokens_total", gen_ai_request_model=MODEL) == second["prompt_tokens"]
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert scrape.value(duration, error_type="unavailable", gen_ai_request_model=MODEL) == 1
    assert scrape.value(duration, error_type="", gen_ai_request_model=MODEL) == 2
    assert scrape.value("bot_model_retries_total", reason="unavailable") == 1
    assert scrape.value("bot_time_to_first_token_seconds_count") == 2
    # The first token of the first answer came after the failed attempt and its backoff.
    assert scrape.value("bot_time_to_first_token_seconds_bucket", le="0.25") <= 1


async def test_a_refused_request_is_measured_with_its_error_and_not_retried(mistral: fm.FakeMistral) -> None:
    metrics = Metrics()
    client = model_client(mistral, metrics)
    mistral.queue(Script(status=401, body={"message": "Unauthorized"}))
    try:
        with pytest.raises(ModelError) as failure:
            _ = [item async for item in client.stream(BODY)]
    finally:
        await client.aclose()
    assert failure.value.kind is ErrorKind.AUTH
    scrape = Scrape(metrics.exposition()[0].decode())
    assert scrape.value("gen_ai_client_operation_duration_seconds_count", error_type="auth") == 1
    assert scrape.value("bot_model_retries_total") == 0
    assert scrape.value("gen_ai_client_token_usage_count") == 0


async def test_a_cancelled_stream_is_measured_as_cancelled(mistral: fm.FakeMistral) -> None:
    metrics = Metrics()
    client = model_client(mistral, metrics)
    mistral.queue(Script(chunks=[f"w{i} " for i in range(100)], delay=0.05))
    first_text = asyncio.Event()

    async def read() -> None:
        async for _ in client.stream(BODY):
            first_text.set()

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(first_text.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await client.aclose()
    scrape = Scrape(metrics.exposition()[0].decode())
    assert scrape.value("gen_ai_client_operation_duration_seconds_count", error_type="cancelled") == 1
    assert scrape.value("bot_time_to_first_token_seconds_count") == 1
    assert scrape.value("gen_ai_client_token_usage_count") == 0  # no usage came: nothing is made up


async def test_the_slack_client_counts_every_result(slack: fs.FakeSlack) -> None:
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        api = SlackApi(AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url, session=session), metrics=metrics)
        await api.post(TEAM, CHANNEL, "hello")
        slack.errors["chat.postMessage"] = deque(["is_archived"])
        with pytest.raises(SlackCallError):
            await api.post(TEAM, CHANNEL, "again")
        slack.limits["chat.postEphemeral"] = (0, 60.0)
        with pytest.raises(RateLimited):
            await api.call(TEAM, "chat.postEphemeral", retry_rate_limited=False, channel=CHANNEL, user="U0ADA")
    scrape = Scrape(metrics.exposition()[0].decode())
    assert scrape.value("slack_api_calls_total", method="chat.postMessage", result="ok") == 1
    assert scrape.value("slack_api_calls_total", method="chat.postMessage", result="is_archived") == 1
    assert scrape.value("slack_api_calls_total", method="chat.postEphemeral", result="ratelimited") == 1
    assert_bounded(scrape, CHANNEL, TEAM, "U0ADA")


async def test_the_slack_client_counts_an_unreachable_slack() -> None:
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=fm.closed_port_url() + "/api/", session=session)
        client.retry_handlers = []  # one attempt, not slack_sdk's retry of connection errors
        api = SlackApi(client, metrics=metrics)
        with pytest.raises(SlackCallError):
            await api.call(TEAM, "chat.update", urgent=False, channel=CHANNEL, ts="1.2", text="x")
    scrape = Scrape(metrics.exposition()[0].decode())
    assert scrape.value("slack_api_calls_total", method="chat.update", result="unreachable") == 1


def test_requests_carry_the_prompt_cache_key_only_when_given() -> None:
    messages = [{"role": "user", "content": "q"}]
    assert request_body(ModelParams(model="m"), messages, prompt_cache_key="42")["prompt_cache_key"] == "42"
    assert "prompt_cache_key" not in request_body(ModelParams(model="m"), messages)
    assert "prompt_cache_key" in fm.ACCEPTED


# The bot, scraped ----------------------------------------------------------------------------------------


def mention(text: str) -> str:
    return f"<@{BOT_USER}> {text}"


async def start(h: Harness, **env: str) -> str:
    """Start the bot; the URL of its /metrics (the Slack server's in HTTP mode, METRICS_PORT's in Socket Mode)."""
    if h.mode == "socket":
        port = free_port()
        await h.start(METRICS_PORT=str(port), **env)
        return f"http://127.0.0.1:{port}/metrics"
    await h.start(**env)
    return f"http://127.0.0.1:{h.port}/metrics"


async def scrape(url: str) -> Scrape:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return Scrape(await response.text())


async def ask(h: Harness, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    if thread_ts is None:
        event = h.slack.user_message(CHANNEL, "U0ADA", mention(text))
        await h.deliver(h.slack.as_mention(event))
    else:
        event = h.slack.user_message(CHANNEL, "U0ADA", text, thread_ts=thread_ts)
        await h.deliver(event)
    await h.settle()
    return event


async def test_an_answer_moves_the_model_and_slack_metrics(harness: Harness) -> None:
    url = await start(harness)
    before = await scrape(url)
    harness.mistral.queue(Script(chunks=["Brie ", "is ", "soft."], delay=0.05))
    event = await ask(harness, "best cheese?")
    after = await scrape(url)

    assert [r.text for r in harness.slack.bot_replies(CHANNEL, event["ts"])] == ["Brie is soft."]
    [usage] = harness.mistral.usages
    model = {"gen_ai_provider_name": "mistral_ai", "gen_ai_operation_name": "chat"}
    tokens = "gen_ai_client_token_usage"
    assert delta(before, after, f"{tokens}_count", gen_ai_token_type="input", **model) == 1
    assert delta(before, after, f"{tokens}_sum", gen_ai_token_type="input", **model) == usage["prompt_tokens"]
    assert delta(before, after, f"{tokens}_count", gen_ai_token_type="output", **model) == 1
    assert delta(before, after, f"{tokens}_sum", gen_ai_token_type="output", **model) == usage["completion_tokens"]
    assert delta(before, after, "gen_ai_client_operation_duration_seconds_count", error_type="") == 1
    assert delta(before, after, "bot_time_to_first_token_seconds_count") == 1
    assert delta(before, after, "slack_api_calls_total", method="chat.postMessage", result="ok") >= 1
    assert delta(before, after, "slack_api_calls_total", method="chat.update", result="ok") >= 1
    assert after.value("slack_pacer_waiting") == 0
    assert_bounded(after, CHANNEL, TEAM, "U0ADA", BOT_USER, event["ts"])


async def test_a_follow_up_reuses_the_conversations_cache_key_and_reports_cached_tokens(harness: Harness) -> None:
    url = await start(harness)
    first = await ask(harness, "Name a cheese")
    before = await scrape(url)
    await ask(harness, "And a wine?", thread_ts=first["ts"])
    after = await scrape(url)

    keys = [r.get("prompt_cache_key") for r in harness.mistral.chat_requests]
    assert len(keys) == 2 and keys[0] == keys[1] and str(keys[0]).isdigit()  # the conversation's id
    cached = harness.mistral.usages[1]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0  # the system prompt and the first turn, as the fake's cache counts them
    assert delta(before, after, "bot_model_cached_input_tokens_total") == cached
    other = await ask(harness, "Another thread")
    assert harness.mistral.chat_requests[-1]["prompt_cache_key"] != keys[0]
    assert_bounded(await scrape(url), CHANNEL, TEAM, "U0ADA", first["ts"], other["ts"])


async def test_a_429_from_slack_counts_as_ratelimited(harness: Harness) -> None:
    url = await start(harness)
    harness.slack.limits = {"assistant.threads.setStatus": (0, 60.0)}  # every loading state meets a 429
    before = await scrape(url)
    await ask(harness, "hello")
    after = await scrape(url)
    assert harness.slack.rate_limited >= 1
    result = {"method": "assistant.threads.setStatus", "result": "ratelimited"}
    assert delta(before, after, "slack_api_calls_total", **result) == harness.slack.rate_limited


async def test_a_model_503_then_an_answer_counts_a_retry(harness: Harness) -> None:
    url = await start(harness)
    harness.mistral.queue(Script(status=503, body={"detail": "Service Unavailable"}), Script(chunks=["ok"]))
    before = await scrape(url)
    await ask(harness, "hello")
    after = await scrape(url)
    assert delta(before, after, "bot_model_retries_total", reason="unavailable") == 1
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert delta(before, after, duration, error_type="unavailable") == 1
    assert delta(before, after, duration, error_type="") == 1


async def test_a_refused_model_request_is_measured_with_its_error(harness: Harness) -> None:
    url = await start(harness)
    harness.mistral.queue(Script(status=401, body={"message": "Unauthorized"}))
    before = await scrape(url)
    await ask(harness, "hello")
    after = await scrape(url)
    assert delta(before, after, "gen_ai_client_operation_duration_seconds_count", error_type="auth") == 1
    assert delta(before, after, "bot_model_retries_total") == 0


# How answers end: counted by the conversation (bot/conversation.py) ------------------------------------------


async def test_a_complete_answer_is_counted_and_timed(harness: Harness) -> None:
    url = await start(harness)
    before = await scrape(url)
    harness.mistral.queue(Script(chunks=["Brie ", "is ", "soft."], delay=0.05))
    await ask(harness, "best cheese?")
    after = await scrape(url)
    assert delta(before, after, "bot_answers_total", outcome="complete") == 1
    assert delta(before, after, "bot_answers_total") == 1
    assert after.value("bot_answers_in_flight") == 0
    assert delta(before, after, "bot_answer_duration_seconds_count") == 1
    assert after.value("bot_answer_duration_seconds_sum") > 0


async def test_answers_in_flight_are_counted_while_they_stream(harness: Harness) -> None:
    url = await start(harness)
    harness.mistral.queue(Script(chunks=[f"w{i} " for i in range(30)], delay=0.05))
    event = harness.slack.user_message(CHANNEL, "U0ADA", mention("count"))
    await harness.deliver(harness.slack.as_mention(event))
    await until(lambda: harness.slack.bot_replies(CHANNEL, event["ts"]), message="a reply")
    assert (await scrape(url)).value("bot_answers_in_flight") == 1
    await harness.settle()
    assert (await scrape(url)).value("bot_answers_in_flight") == 0


async def test_a_failed_answer_is_counted_as_failed(harness: Harness) -> None:
    url = await start(harness)
    harness.mistral.queue(Script(status=401, body={"message": "Unauthorized"}))
    before = await scrape(url)
    await ask(harness, "hello")
    after = await scrape(url)
    assert delta(before, after, "bot_answers_total", outcome="failed") == 1
    assert delta(before, after, "bot_answers_total") == 1
    assert after.value("bot_answers_in_flight") == 0
    assert delta(before, after, "bot_answer_duration_seconds_count") == 0


async def test_an_interrupted_answer_is_counted_as_partial(harness: Harness) -> None:
    url = await start(harness)
    harness.mistral.queue(Script(chunks=["one ", "two ", "three "], cut_after=2, delay=0.05))
    before = await scrape(url)
    await ask(harness, "count")
    after = await scrape(url)
    assert delta(before, after, "gen_ai_client_operation_duration_seconds_count", error_type="interrupted") == 1
    assert delta(before, after, "bot_answers_total", outcome="partial") == 1
    assert delta(before, after, "bot_answers_total") == 1


async def test_a_stopped_answer_is_counted_as_stopped(harness: Harness) -> None:
    url = await start(harness)
    harness.mistral.queue(Script(chunks=SLOW, delay=0.1))
    before = await scrape(url)
    event = harness.slack.user_message(CHANNEL, "U0ADA", mention("Count slowly"))
    await harness.deliver(harness.slack.as_mention(event))
    reply = await until(lambda: next(iter(harness.slack.bot_replies(CHANNEL, event["ts"])), None), message="a reply")
    await until(lambda: STOP_ACTION in reply.actions() and "word3" in reply.blocks_text(), message="text and Stop")
    await click(harness, reply, STOP_ACTION)
    await harness.settle()
    after = await scrape(url)
    assert delta(before, after, "gen_ai_client_operation_duration_seconds_count", error_type="cancelled") == 1
    assert delta(before, after, "bot_answers_total", outcome="stopped") == 1
    assert after.value("bot_answers_in_flight") == 0
