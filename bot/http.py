"""HTTP mode's web server: Slack's requests at `/slack/events`, a health check at `/healthz`.

Bolt's own aiohttp server parses a body before checking its signature and answers 500 to a body it cannot
parse; this front door answers 400 to garbage instead, and hands everything else to Bolt, which verifies
signatures (401) and timestamps.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # Slack's payloads are far smaller; anything bigger is not from Slack


def web_app(app: AsyncApp, path: str = "/slack/events") -> web.Application:
    async def slack_request(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            bolt_request = AsyncBoltRequest(
                body=raw.decode("utf-8"), query=request.query_string, headers=dict(request.headers)
            )
        except (ValueError, AttributeError, TypeError, KeyError, IndexError):
            # Undecodable bytes, broken JSON or form data, or JSON of the wrong shape: Bolt's parsing
            # assumes a well-formed Slack payload.
            return web.Response(status=400, text="invalid request body")
        if not isinstance(bolt_request.body, dict) or not bolt_request.body:
            return web.Response(status=400, text="invalid request body")
        response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    web_application = web.Application(client_max_size=MAX_BODY_BYTES)
    web_application.router.add_post(path, slack_request)
    web_application.router.add_get("/healthz", health)
    return web_application
