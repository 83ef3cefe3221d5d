"""The model client against loopback servers: what each way of failing becomes, what is retried, and how the
context sizes from `GET /v1/models` are cached. Timeouts are small, so every test takes well under a second or two."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.core.params import ModelParams, request_body
from bot.core.sse import Delta, Finish
from bot.mistral import DEFAULT_CONTEXT_TOKENS, ErrorKind, MistralClient, ModelError, Timeouts, error_message
from tests.fakes import mistral as fm

BODY: dict[str, Any] = {"model": "tiny-test-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
FAST = Timeouts(connect=0.2, idle=0.3, total=5.0, retry_budget=1.0)


def client_for(url: str, timeouts: Timeouts = FAST, **kwargs: Any) -> MistralClient:
    return MistralClient(base_url=url, api_key=fm.API_KEY, timeouts=timeouts, **kwargs)


async def answer(client: MistralClient) -> tuple[list[Delta | Finish], list[ModelError]]:
    """Stream BODY; the items that came and the failures retried on the way (a final failure raises)."""
    retried: list[ModelError] = []

    async def on_retry(exc: ModelError, attempt: int, delay: float) -> None:
        retried.append(exc)

    items = [item async for item in client.stream(BODY, on_retry=on_retry)]
    return items, retried


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
async def silent() -> AsyncIterator[fm.SilentServer]:
    server = fm.SilentServer()
    await server.start()
    yield server
    await server.stop()


# Connecting, and waiting for data -------------------------------------------------------------------------


async def test_a_connect_timeout_is_unavailable_and_retried() -> None:
    unreachable = fm.UnreachableServer()
    client = client_for(unreachable.url)
    try:
        with pytest.raises(ModelError) as caught:
            await answer(client)
    finally:
        await client.aclose()
        unreachable.close()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.retryable


async def test_a_connect_timeout_before_the_first_chunk_is_retried_until_it_works(mistral: fm.FakeMistral) -> None:
    unreachable = fm.UnreachableServer()
    urls = [unreachable.url, unreachable.url, mistral.url]

    class Redirect(httpx.AsyncBaseTransport):
        """Sends each attempt to the next URL: two unreachable hosts, then the fake."""

        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            target = httpx.URL(urls.pop(0) if urls else mistral.url)
            request.url = request.url.copy_with(host=target.host, port=target.port)
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    http = httpx.AsyncClient(
        base_url=mistral.url,
        headers={"Authorization": f"Bearer {fm.API_KEY}"},
        timeout=httpx.Timeout(0.3, connect=0.2),
        transport=Redirect(),
    )
    client = client_for(mistral.url, Timeouts(connect=0.2, idle=0.3, total=5.0, retry_budget=3.0), client=http)
    try:
        items, retried = await answer(client)
    finally:
        await client.aclose()
        unreachable.close()
    assert [e.kind for e in retried] == [ErrorKind.UNAVAILABLE, ErrorKind.UNAVAILABLE]
    assert "".join(i.text for i in items if isinstance(i, Delta)) == "You said: hi"


async def test_a_refused_connection_is_unavailable_and_retried() -> None:
    client = client_for(fm.closed_port_url())
    try:
        with pytest.raises(ModelError) as caught:
            await answer(client)
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.retryable


async def test_no_free_connection_in_the_pool_is_unavailable(silent: fm.SilentServer) -> None:
    http = httpx.AsyncClient(
        base_url=silent.url,
        timeout=httpx.Timeout(5.0, connect=0.2, pool=0.1),
        limits=httpx.Limits(max_connections=1),
    )
    client = client_for(silent.url, Timeouts(connect=0.2, idle=5.0, total=5.0, retry_budget=0.0), client=http)
    first = asyncio.ensure_future(answer(client))  # holds the only connection: the server never answers
    try:
        await until(lambda: silent.connections == 1)
        with pytest.raises(ModelError) as caught:
            await answer(client)
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await client.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert isinstance(caught.value.__cause__, httpx.PoolTimeout)


async def test_a_server_that_accepts_but_never_answers_is_a_timeout_not_retried(silent: fm.SilentServer) -> None:
    client = client_for(silent.url)
    try:
        with pytest.raises(ModelError) as caught:
            await answer(client)
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert not caught.value.retryable
    assert silent.connections == 1


async def test_a_stream_that_stalls_mid_answer_is_a_timeout(mistral: fm.FakeMistral) -> None:
    mistral.queue(fm.Script(chunks=["Hello", " there"], hang_after=1))
    client = client_for(mistral.url)
    seen: list[Delta | Finish] = []
    try:
        with pytest.raises(ModelError) as caught:
            async for item in client.stream(BODY):
                seen.append(item)
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert any(isinstance(i, Delta) and i.text == "Hello" for i in seen)
    assert len(mistral.chat_requests) == 1  # text was shown: never retried


# Context sizes from GET /v1/models ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_failed_models_lookup_falls_back_then_is_tried_again_later(mistral: fm.FakeMistral) -> None:
    clock = Clock()
    client = client_for(mistral.url, clock=clock)
    mistral.models_failures = 1
    try:
        assert await client.context_length("tiny-test-model") == DEFAULT_CONTEXT_TOKENS
        clock.now += 10
        assert await client.context_length("tiny-test-model") == DEFAULT_CONTEXT_TOKENS
        assert mistral.models_requests == 1  # not asked again on every turn while the API fails
        clock.now += 60
        assert await client.context_length("tiny-test-model") == fm.MODELS["tiny-test-model"]
        assert mistral.models_requests == 2
        clock.now += 3600
        assert await client.context_length("mistral-large-latest") == fm.MODELS["mistral-large-latest"]
        assert mistral.models_requests == 2  # real answers are cached
    finally:
        await client.aclose()


async def test_a_model_missing_from_the_list_is_looked_up_again_later(mistral: fm.FakeMistral) -> None:
    clock = Clock()
    client = client_for(mistral.url, clock=clock)
    try:
        assert await client.context_length("brand-new-model") == DEFAULT_CONTEXT_TOKENS
        assert await client.context_length("brand-new-model") == DEFAULT_CONTEXT_TOKENS
        assert mistral.models_requests == 1
        fm.MODELS["brand-new-model"] = 4096
        clock.now += 61
        assert await client.context_length("brand-new-model") == 4096
    finally:
        fm.MODELS.pop("brand-new-model", None)
        await client.aclose()


async def test_concurrent_turns_share_one_models_lookup(mistral: fm.FakeMistral) -> None:
    client = client_for(mistral.url)
    try:
        sizes = await asyncio.gather(*(client.context_length("tiny-test-model") for _ in range(5)))
    finally:
        await client.aclose()
    assert sizes == [fm.MODELS["tiny-test-model"]] * 5
    assert mistral.models_requests == 1


# reading in paced gulps -----------------------------------------------------------------------------


async def test_a_stream_is_read_in_gulps_with_every_character_kept(mistral: fm.FakeMistral) -> None:
    pieces = [f"wörd{i} 🧀 " for i in range(40)]  # multi-byte characters, cut anywhere by the network
    mistral.queue(fm.Script(chunks=pieces, delay=0.02))
    client = client_for(mistral.url, Timeouts(connect=1, idle=2, total=10, retry_budget=1), read_pause=0.2)
    items, _ = await answer(client)
    deltas = [i for i in items if isinstance(i, Delta)]
    assert "".join(d.text for d in deltas) == "".join(pieces)
    assert len(deltas) <= 10  # 40 events over 0.8 s, read every 0.2 s: a handful of reads, not 40
    assert isinstance(items[-1], Finish) and items[-1].reason == "stop"
    await client.aclose()


async def test_the_pause_between_reads_is_not_mistaken_for_silence(mistral: fm.FakeMistral) -> None:
    # The idle timeout (0.3 s) is shorter than the pause between reads (0.5 s): only the model's own silence counts.
    mistral.queue(fm.Script(chunks=["a", "b", "c", "d"], delay=0.1))
    client = client_for(mistral.url, read_pause=0.5)
    items, _ = await answer(client)
    assert "".join(i.text for i in items if isinstance(i, Delta)) == "abcd"
    await client.aclose()


async def test_a_stream_cut_after_the_model_answered_is_an_interruption(mistral: fm.FakeMistral) -> None:
    mistral.queue(fm.Script(chunks=["one ", "two ", "three "], cut_after=2))
    client = client_for(mistral.url)
    with pytest.raises(ModelError) as failure:
        await answer(client)
    assert failure.value.kind is ErrorKind.INTERRUPTED  # not "unavailable": text was already shown
    await client.aclose()


# prompt caching ----------------------------------------------------------------------------------------


async def test_the_prompt_cache_key_is_accepted_and_cached_tokens_come_back(mistral: fm.FakeMistral) -> None:
    first = request_body(
        ModelParams(model="tiny-test-model"), [{"role": "user", "content": "x" * 400}], prompt_cache_key="12"
    )
    follow_up = {
        **first,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": "y" * 40},
            {"role": "user", "content": "z" * 40},
        ],
    }
    client = client_for(mistral.url)
    try:
        finishes = []
        for body in (first, follow_up, {**follow_up, "prompt_cache_key": "13"}):
            items = [item async for item in client.stream(body)]
            finishes.append(items[-1])
    finally:
        await client.aclose()
    assert [r["prompt_cache_key"] for r in mistral.chat_requests] == ["12", "12", "13"]
    assert all(isinstance(f, Finish) for f in finishes)
    # The follow-up shares its first message with the request before it; another key shares nothing.
    assert [f.cached_tokens for f in finishes] == [0, 100, 0]  # type: ignore[union-attr]
    assert finishes[1].prompt_tokens == 120  # type: ignore[union-attr]


async def test_without_a_prompt_cache_key_no_cached_tokens_are_reported(mistral: fm.FakeMistral) -> None:
    client = client_for(mistral.url)
    try:
        items, _ = await answer(client)
    finally:
        await client.aclose()
    assert isinstance(items[-1], Finish) and items[-1].cached_tokens is None
    assert "prompt_tokens_details" not in mistral.usages[-1]


def test_error_bodies_are_described_without_quoting_what_was_sent() -> None:
    nested = {"message": {"detail": [{"loc": ["body", "messages", 1], "msg": "bad role", "input": "my secret plan"}]}}
    assert error_message(json.dumps(nested).encode()) == "body.messages.1: bad role"
    assert error_message(b'{"object": "error", "message": "Invalid model", "code": "1500"}') == "Invalid model"
    assert error_message(b'{"what": "my secret plan"}') == "an error body of an unknown shape"
