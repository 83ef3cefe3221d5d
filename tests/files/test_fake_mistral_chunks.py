"""The fake Mistral checks content chunks as the real API does, and still takes plain string content."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes import mistral as fm
from tests.files import samples

PNG = samples.image_bytes("PNG", (8, 8))
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
PDF_URL = "data:application/pdf;base64," + base64.b64encode(samples.pdf_bytes(["x"])).decode()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(session: aiohttp.ClientSession, mistral: fm.FakeMistral, messages: list[dict[str, Any]]) -> int:
    body = {"model": "mistral-large-latest", "messages": messages, "stream": True}
    headers = {"Authorization": f"Bearer {fm.API_KEY}"}
    async with session.post(f"{mistral.url}/v1/chat/completions", json=body, headers=headers) as response:
        await response.read()
        return response.status


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize(
    "messages",
    [
        user("a plain string, as every existing test sends"),
        user([{"type": "text", "text": "chunks"}]),
        user([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": PNG_URL}]),
        user([{"type": "image_url", "image_url": {"url": PNG_URL, "detail": "high"}}]),
        user([{"type": "image_url", "image_url": "https://example.com/cat.png"}]),  # public: Mistral fetches it
        user([{"type": "document_url", "document_url": PDF_URL}]),
        user([{"type": "document_url", "document_url": PDF_URL, "document_name": "x.pdf"}]),
        [{"role": "system", "content": [{"type": "text", "text": "be brief"}]}, *user("hi")],
    ],
)
async def test_accepted(
    session: aiohttp.ClientSession, mistral: fm.FakeMistral, messages: list[dict[str, Any]]
) -> None:
    assert await post(session, mistral, messages) == 200


@pytest.mark.parametrize(
    "messages,status",
    [
        (user([{"type": "video_url", "video_url": "x"}]), 422),  # unknown chunk type
        (user([{"text": "no type"}]), 422),
        (user(["a bare string in a list"]), 422),
        (user([{"type": "text", "text": "x", "extra": 1}]), 422),
        (user([{"type": "text"}]), 422),
        (user([{"type": "image_url", "image_url": {"url": PNG_URL, "size": 3}}]), 422),
        (user([{"type": "image_url", "image_url": {"url": PNG_URL, "detail": "max"}}]), 422),
        (user({"type": "text", "text": "an object, not a list"}), 422),
        ([{"role": "system", "content": [{"type": "image_url", "image_url": PNG_URL}]}, *user("hi")], 422),
        # URLs Mistral cannot fetch: Slack's private hosts, loopback, private networks
        (user([{"type": "image_url", "image_url": "https://files.slack.com/files-pri/T1-F1/download/a.png"}]), 400),
        (user([{"type": "image_url", "image_url": {"url": "http://127.0.0.1:3000/files-pri/T-F/a.png"}}]), 400),
        (user([{"type": "document_url", "document_url": "https://acme.slack.com/files-pri/T-F/spec.pdf"}]), 400),
        (user([{"type": "image_url", "image_url": "http://10.0.0.5/a.png"}]), 400),
        (user([{"type": "image_url", "image_url": "file:///etc/passwd"}]), 400),
        # data: URLs that are not what they say
        (user([{"type": "image_url", "image_url": "data:image/png;base64,not base64!"}]), 400),
        (user([{"type": "image_url", "image_url": "data:image/jpeg;base64," + PNG_URL.split(",")[1]}]), 400),
        (user([{"type": "image_url", "image_url": "data:image/svg+xml;base64,PHN2Zz4="}]), 400),
        (user([{"type": "document_url", "document_url": PNG_URL}]), 400),
    ],
)
async def test_refused(
    session: aiohttp.ClientSession, mistral: fm.FakeMistral, messages: list[dict[str, Any]], status: int
) -> None:
    assert await post(session, mistral, messages) == status


async def test_a_model_without_vision_refuses_images(session: aiohttp.ClientSession, mistral: fm.FakeMistral) -> None:
    mistral.refuse_images = True
    assert await post(session, mistral, user([{"type": "image_url", "image_url": PNG_URL}])) == 400
    assert await post(session, mistral, user("text still works")) == 200
    mistral.refuse_documents = True
    assert await post(session, mistral, user([{"type": "document_url", "document_url": PDF_URL}])) == 400


def test_attachments_decode_what_was_sent() -> None:
    body = {"messages": user([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": PNG_URL}}])}
    [found] = fm.attachments(body)
    assert (found.type, found.mime, found.data) == ("image_url", "image/png", PNG)


def test_the_echo_of_chunks_shows_labels_not_base64() -> None:
    echo = fm.echo_answer(user([{"type": "text", "text": "see"}, {"type": "image_url", "image_url": PNG_URL}]))
    assert echo.startswith("You said: see\n[image_url: image/png, ")
    assert PNG_URL[30:60] not in echo


def test_string_content_counts_as_before() -> None:
    messages = user("x" * 400)
    assert fm.prompt_chars(messages) == 400
    with_image = user([{"type": "text", "text": "x" * 400}, {"type": "image_url", "image_url": PNG_URL}])
    assert fm.prompt_chars(with_image) == 400 + fm.IMAGE_TOKENS * 4
