"""The model API's HTTP transport: httpx's client API over aiohttp, with streams read in paced gulps.

A model streams an answer as about ten small events a second. httpx's own transport wakes up, reads the socket
and parses once per event, which made reading the stream most of the bot's CPU per answer. People see an
answer grow about once a second in Slack, so the stream is read at most every `pause` seconds instead: between
reads the socket is not read at all (the kernel keeps what arrives), and the next read takes every event that
came meanwhile in one piece. aiohttp (already the bot's HTTP library for Slack) does the I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiohttp import ClientResponse
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions


class PacedStream(httpx.AsyncByteStream):
    def __init__(self, response: ClientResponse, pause: float) -> None:
        self._response = response
        self._pause = pause

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._response
        with map_aiohttp_exceptions():
            while chunk := await response.content.readany():
                yield chunk
                protocol = response.connection.protocol if response.connection is not None else None
                if protocol is None or self._pause <= 0:
                    continue  # the body has all arrived (the connection is released), or pacing is off
                protocol.pause_reading()  # also stops aiohttp's read timeout: the silence is ours
                try:
                    await asyncio.sleep(self._pause)
                finally:
                    protocol.resume_reading()

    async def aclose(self) -> None:
        with map_aiohttp_exceptions():
            await self._response.__aexit__(None, None, None)


class PacedTransport(AiohttpTransport):
    """`AiohttpTransport` whose response bodies are `PacedStream`s."""

    def __init__(self, *, pause: float) -> None:
        super().__init__()
        self.pause = pause

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        stream = response.stream
        aiohttp_response = getattr(stream, "_aiohttp_response", None)
        if not isinstance(stream, AiohttpResponseStream) or not isinstance(aiohttp_response, ClientResponse):
            return response  # a version of httpx-aiohttp we do not know: read unpaced, still correct
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return response  # a JSON answer or an error: read it at once
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=PacedStream(aiohttp_response, self.pause),
            request=request,
            extensions=response.extensions,
        )


CLOSED = httpx.ByteStream(b"")  # what a closed response's stream becomes: nothing left to read


@asynccontextmanager
async def streamed(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
    """`client.stream(...)`, but the response is unbound from its stream once closed. httpx 0.28 binds every
    response's stream back to the response (to time it): a reference cycle per request, which only the cyclic
    garbage collector frees, late and a burst at a time (encode/httpx#3733)."""
    response = await client.send(client.build_request(method, url, **kwargs), stream=True)
    try:
        yield response
    finally:
        try:
            await response.aclose()
        finally:
            response.stream = CLOSED
