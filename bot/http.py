"""Slack's requests at the front door: HTTP mode's web server, and what any mode answers when handling fails.

Bolt's own aiohttp server parses a body before checking its signature, answers 500 to a body it cannot parse,
and logs the body of a request whose signature is wrong, message text included. This front door answers 400
to garbage and 401 to a bad signature itself (logging neither body), and hands the rest to Bolt, which checks
signatures and timestamps again. `/healthz` is for load balancers, `/metrics` for Prometheus; in Socket Mode,
which has no web server of its own, `start_metrics_server` serves both on a port of their own.

Whatever a listener or middleware raises, in either mode, ends in `acknowledge_failures`: a log line without
the payload, and an acknowledgement, so Slack does not resend a payload that would fail the same way again.
So does a payload that no listener takes (Bolt would answer 404, and Slack would resend it). A failure of the
machine or of the database is the exception: no acknowledgement, so Slack sends the payload again later.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.storage import StoreError

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # Slack's payloads are far smaller; anything bigger is not from Slack
COMMAND_FAILED = "Sorry, something went wrong with that command. Please try again in a moment."
HEALTH_TIMEOUT = 2.0  # a database slower than this to answer `SELECT 1` counts as out of reach

Ping = Callable[[], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def web_app(
    app: AsyncApp,
    *,
    signing_secret: str,
    path: str = "/slack/events",
    ping: Ping | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """The HTTP server; `ping` (the store's) raises when the database is out of reach, and /healthz says 503.
    With `metrics`, `GET /metrics` serves them."""
    verifier = SignatureVerifier(signing_secret)

    async def slack_request(request: web.Request) -> web.Response:
        raw = await request.read()
        if not _signed(verifier, raw, request.headers):
            log.info("refused a request without a valid Slack signature (%d bytes, not logged)", len(raw))
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            bolt_request = AsyncBoltRequest(
                body=raw.decode("utf-8"), query=request.query_string, headers=dict(request.headers)
            )
        except (ValueError, AttributeError, TypeError, KeyError, IndexError):
            # Undecodable bytes, broken JSON or form data, or JSON of the wrong shape: Bolt's parsing
            # assumes a well-formed Slack payload.
            return web.Response(status=400, text="invalid request body")
        body = bolt_request.body
        if not isinstance(body, dict) or not body:
            return web.Response(status=400, text="invalid request body")
        if body.get("type") == "event_callback" and not isinstance(body.get("event"), dict):
            return web.Response(status=400, text="invalid request body")  # an envelope without an event
        response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    web_application = web.Application(client_max_size=MAX_BODY_BYTES)
    web_application.router.add_post(path, slack_request)
    _add_probes(web_application, ping, metrics)
    return web_application


async def start_metrics_server(port: int, *, metrics: Metrics, ping: Ping | None = None) -> web.AppRunner:
    """Socket Mode's small server: `/metrics` and `/healthz` on 0.0.0.0:`port`; clean it up to stop it."""
    application = web.Application()
    _add_probes(application, ping, metrics)
    runner = web.AppRunner(application, access_log=None)  # a line per probe says nothing
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _add_probes(application: web.Application, ping: Ping | None, metrics: Metrics | None) -> None:
    application.router.add_get("/healthz", _health(ping))
    if metrics is not None:
        application.router.add_get("/metrics", _metrics(metrics))


def _health(ping: Ping | None) -> Handler:
    async def health(_: web.Request) -> web.Response:
        if ping is not None:
            try:
                async with asyncio.timeout(HEALTH_TIMEOUT):
                    await ping()
            except (StoreError, TimeoutError) as exc:
                # A balancer stops sending this replica events it could not store.
                log.warning("health check: the database is out of reach (%s)", type(exc).__name__)
                return web.Response(status=503, text="database unreachable")
        return web.Response(text="ok")

    return health


def _metrics(metrics: Metrics) -> Handler:
    async def scrape(_: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        # Set as a header: aiohttp's content_type argument refuses the charset this one carries.
        return web.Response(body=body, headers={"Content-Type": content_type})

    return scrape


def _signed(verifier: SignatureVerifier, raw: bytes, headers: Mapping[str, str]) -> bool:
    try:
        return verifier.is_valid(raw, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature"))
    except (ValueError, TypeError):  # a timestamp that is not a number, a signature that is not ASCII
        return False


async def acknowledge_failures(error: Exception, request: AsyncBoltRequest) -> BoltResponse:
    """Bolt's error handler: one log line naming the error's type and origin, never its text (which may quote
    the payload); the full traceback at DEBUG.

    A failure of the machine (network, disk: `OSError`) or a database out of reach (`StoreError`) answers 500,
    so Slack redelivers what the bot could not store (in Socket Mode, Bolt then sends no acknowledgement);
    anything else is a payload the bot cannot handle, and is acknowledged.
    """
    body = request.body if isinstance(request.body, dict) else {}
    kind = "command" if isinstance(body.get("command"), str) else "event" if "event" in body else "request"
    if isinstance(error, BoltUnhandledRequestError):  # no listener takes it: Slack need not send it again
        log.info("ignored a Slack %s that no listener takes", kind)
        return BoltResponse(status=200, body="")
    frames = traceback.extract_tb(error.__traceback__)
    origin = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    log.debug("the failure in full", exc_info=error)
    if isinstance(error, OSError | StoreError):
        log.error("could not handle a Slack %s (%s%s); Slack will send it again", kind, type(error).__name__, origin)
        return BoltResponse(status=500, body="")
    log.error("could not handle a Slack %s (%s%s); acknowledged", kind, type(error).__name__, origin)
    if kind == "command":
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": COMMAND_FAILED})
    return BoltResponse(status=200, body="")
