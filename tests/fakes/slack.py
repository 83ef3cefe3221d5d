"""A fake Slack on 127.0.0.1: the Web API, Socket Mode's websocket, response_url, and event delivery.

It behaves as Slack's docs describe the real one: `ok: false` errors with HTTP 200, 429 with Retry-After
past a method's limit, `msg_too_long` past 4,000 characters, app-level tokens for `apps.connections.open`,
and signed HTTP event delivery. It keeps each message's current text so tests read what a person would see.
Socket Mode takes several connections at once and spreads envelopes over them (see "Socket Mode" below).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import yaml
from aiohttp import web

from tests.fakes.slack_ai import AgentSurfaces

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
SIGNING_SECRET = "test-signing-secret-0123456789"
TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
UPDATE_LIMIT = 4_000  # chat.update answers msg_too_long at about this length
TRANSIENT_FAULTS = ("internal_error", "fatal_error", "request_timeout", "http_500", "http_503")
# What installing manifest.yml grants the bot token.
MANIFEST = yaml.safe_load((Path(__file__).parents[2] / "manifest.yml").read_text())
BOT_SCOPES = frozenset(MANIFEST["oauth_config"]["scopes"]["bot"])


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    thread_ts: str | None
    user: str
    bot_id: str | None = None
    updates: int = 0
    history: list[str] = field(default_factory=list)
    streaming: bool = False  # a native stream (chat.startStream) not yet stopped
    stream_started: float = 0.0
    changed_at: list[float] = field(default_factory=list)  # when each entry of `history` became visible
    blocks: list[dict[str, Any]] = field(default_factory=list)  # Block Kit; Slack shows these, not `text`
    files: list[dict[str, Any]] = field(default_factory=list)  # file objects shared with it (`file_message`)

    def blocks_text(self) -> str:
        """The text of its section and markdown blocks (what a person reads when it has blocks), else `text`."""
        texts = [b["text"]["text"] if b["type"] == "section" else b["text"] for b in self.blocks if _has_text(b)]
        return "\n".join(texts) if texts else self.text

    def actions(self) -> list[str]:
        """The action_ids of its controls (buttons and feedback buttons), in order."""
        return [e.get("action_id", "") for b in self.blocks for e in b.get("elements", []) if "action_id" in e]

    def live_stream(self, ttl: float) -> bool:
        """Still streaming: started, not stopped, and younger than `ttl` (Slack ends streams after ~5 min)."""
        return self.streaming and time.monotonic() - self.stream_started <= ttl

    def show(self, text: str) -> None:
        self.text = text
        self.history.append(text)
        self.changed_at.append(time.monotonic())


def _has_text(block: dict[str, Any]) -> bool:
    return block.get("type") == "markdown" or (block.get("type") == "section" and "text" in block)


MAX_BLOCKS = 50  # a message holds at most 50 blocks
SECTION_TEXT_LIMIT = 3_000  # a section's text must be under 3,001 characters
MARKDOWN_BLOCK_LIMIT = 12_000


def parse_blocks(value: Any) -> list[dict[str, Any]] | str:
    """A message's `blocks` argument (a JSON string when form-encoded, a list in a JSON body), or Slack's error."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return "invalid_blocks_format"
    if not isinstance(value, list) or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in value):
        return "invalid_blocks_format"
    if len(value) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in value:
        text = block.get("text")
        if block["type"] == "section" and "fields" not in block:
            if not (isinstance(text, dict) and 0 < len(str(text.get("text") or "")) <= SECTION_TEXT_LIMIT):
                return "invalid_blocks"
        if block["type"] == "markdown" and not 0 < len(str(text or "")) <= MARKDOWN_BLOCK_LIMIT:
            return "invalid_blocks"
    return value


SOCKET_REDELIVERIES = 3  # Slack retries an event 3 times


class EnvelopeLost(ConnectionError):
    """A Socket Mode envelope's connection closed before the app acknowledged it (or was not open at all)."""


@dataclass
class SocketConnection:
    """One open Socket Mode websocket, with the envelopes sent on it that await their ack."""

    id: int
    ws: web.WebSocketResponse
    opened_at: float
    pending: set[str] = field(default_factory=set)
    closed: bool = False


@dataclass
class SocketSend:
    """One envelope sent over Socket Mode: on which connection, which attempt, and whether it was acked."""

    envelope_id: str
    kind: str
    connection: int
    retry_attempt: int
    at: float
    acked: bool = False


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    status: int
    error: str | None


SIGN_IN_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Slack</title></head>'
    '<body><h1>Sign in to Test</h1><form action="/signin" method="post"></form></body></html>'
)
FILE_PIECE = 64 * 1024  # downloads are written in pieces of this size, so a reader can stop early


@dataclass
class HostedFile:
    """A file the fake serves at `/files-pri/T0TEAM-<id>/…` (see "File hosting" in FakeSlack)."""

    id: str
    name: str
    mimetype: str
    filetype: str
    data: bytes
    object: dict[str, Any]  # the file object events and files.info carry
    deleted: bool = False  # 404 for downloads, file_deleted from files.info
    chunked: bool = False  # no Content-Length: the reader learns the size only by reading
    content_type: str | None = None  # what the download's Content-Type says (default: the mimetype)
    redirect_to: str | None = None  # answer downloads with a 302 to this URL instead of the body
    fail_status: int | None = None  # answer downloads with this status (500, 503…) and an error page


@dataclass
class FileDownload:
    """One request for a hosted file: who asked (with the bot token or not), what it got, how much was sent."""

    file_id: str
    path: str
    authorized: bool
    status: int
    bytes_sent: int = 0
    complete: bool = False  # the whole body went out
    finished: bool = False  # the handler is done (complete, or the reader went away)


class FakeSlack(AgentSurfaces):
    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], Message] = {}
        self.calls: list[Call] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.deleted: list[Message] = []  # what chat.delete removed, for measuring what people saw
        self.responses: list[dict[str, Any]] = []  # posts to response_url
        # method → (calls, window seconds); past it: 429 with Retry-After
        self.limits: dict[str, tuple[int, float]] = {}
        self.channel_limits: dict[str, tuple[int, float]] = {}  # the same, counted per channel
        self.native_streaming = True  # False: chat.startStream answers channel_type_not_supported
        self.native_dm_only = False  # True: native streaming only in DMs, as some workspaces do
        self.stream_ttl = 300.0  # streams expire: message_not_in_streaming_state
        self.stream_limit = 12_000  # Markdown a streamed message holds in all payloads together
        self.retry_after = 1
        self.rate_limited = 0
        # method → errors to answer next, in order; "http_503" answers HTTP 503 with an HTML page
        self.errors: dict[str, deque[str]] = {}
        # Share of Web API calls that fail transiently (internal_error, fatal_error, HTTP 500/503), at random
        self.fault_rate = 0.0
        self._faults = random.Random(7)
        self._faulted_last: dict[str, bool] = {}
        self.not_in_channel: set[str] = set()
        # Granted to the bot token: Slack names them in the `x-oauth-scopes` header of every Web API answer.
        self.scopes: set[str] = set(BOT_SCOPES)
        # Public channels the bot is not a member of: with chat:write.public it may post there, but Slack sends
        # it no events from them until it joins (conversations.join, scope channels:join).
        self.not_joined: set[str] = set()
        self.unavailable: int | None = None  # an HTTP status (503): every Web API call answers it, as in an outage
        self.socket_unavailable = False  # True: the Socket Mode websocket refuses connections (503)
        self.archived: set[str] = set()
        self.thread_history_available = True
        self.update_limit = UPDATE_LIMIT
        self.post_limit = 40_000  # text past this is truncated by Slack; tests lower it to force msg_too_long
        self.users: dict[str, str] = {}
        self._ts = itertools.count(1)
        self._windows: dict[str, deque[float]] = {}
        self.sockets: dict[int, SocketConnection] = {}  # open Socket Mode connections by id, oldest first
        self.socket_sends: list[SocketSend] = []  # every envelope sent, redeliveries included
        self._socket_ids = itertools.count()
        self._socket_change = asyncio.Event()  # set (and replaced) whenever a connection opens or closes
        self._round_robin = 0
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._envelopes = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        # File hosting (see "File hosting" below)
        self.hosted_files: dict[str, HostedFile] = {}
        self.file_downloads: list[FileDownload] = []
        self._file_ids = itertools.count(1)

    # server -----------------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack_sdk sends some reads (conversations.replies) as GET
        app.router.add_get("/socket", self._socket_handler)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_get("/files-pri/{key}/{tail:.+}", self._file_download)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for connection in list(self.sockets.values()):
            await connection.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def new_ts(self) -> str:
        # Real ts values are epoch seconds with 6 decimals; a counter keeps them unique and ordered.
        return f"{1_700_000_000 + next(self._ts)}.000100"

    # Web API ----------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        if request.content_type == "application/json":
            args = json.loads(raw or b"{}")
        else:
            args = dict(parse_qsl(raw.decode()))
        args = {**request.query, **args}  # slack_sdk puts some methods' arguments in the query string
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or args.get("token", "")
        if self.unavailable is not None:
            self.calls.append(Call(method, args, time.monotonic(), self.unavailable, f"http_{self.unavailable}"))
            body = "<html>Slack is having trouble</html>"
            return web.Response(status=self.unavailable, text=body, content_type="text/html")
        status, body = self._dispatch(method, args, token)
        self.calls.append(Call(method, args, time.monotonic(), status, None if body.get("ok") else body.get("error")))
        error = str(body.get("error") or "")
        if error.startswith("http_"):  # a server error: an HTML page, not JSON
            page = "<html>Slack is having trouble</html>"
            return web.Response(status=int(error[5:]), text=page, content_type="text/html")
        headers = {"Retry-After": str(self.retry_after)} if status == 429 else {}
        if token == BOT_TOKEN:
            headers["x-oauth-scopes"] = ",".join(sorted(self.scopes))
        return web.json_response(body, status=status, headers=headers)

    def _dispatch(self, method: str, args: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        if method == "apps.connections.open":
            if token != APP_TOKEN:
                return 200, {"ok": False, "error": "invalid_auth"}
            return 200, {"ok": True, "url": self.url.replace("http", "ws") + "/socket"}
        if token != BOT_TOKEN:
            return 200, {"ok": False, "error": "invalid_auth"}
        if self._over_limit(method) or self._over_limit(method, str(args.get("channel") or args.get("channel_id"))):
            self.rate_limited += 1
            return 429, {"ok": False, "error": "ratelimited"}
        queued = self.errors.get(method)
        if queued:
            return 200, {"ok": False, "error": queued.popleft()}
        if self.fault_rate and method != "auth.test" and not self._faulted_last.get(method):
            if self._faults.random() < self.fault_rate:
                # A passing failure, never two in a row on one method (real outages are `unavailable`).
                self._faulted_last[method] = True
                return 200, {"ok": False, "error": self._faults.choice(TRANSIENT_FAULTS)}
        self._faulted_last[method] = False
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}
        return 200, handler(args)

    def _over_limit(self, method: str, channel: str | None = None) -> bool:
        limits = self.limits if channel is None else self.channel_limits
        if method not in limits:
            return False
        calls, window = limits[method]
        now = time.monotonic()
        recent = self._windows.setdefault(f"{method}#{channel}", deque())
        while recent and recent[0] <= now - window:
            recent.popleft()
        if len(recent) >= calls:
            return True
        recent.append(now)
        return False

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test",
            "user": "mistral",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    def _writable(self, channel: str) -> str | None:
        if not channel:
            return "channel_not_found"
        if channel in self.archived:
            return "is_archived"
        if channel in self.not_in_channel:
            return "not_in_channel"
        return None

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel.startswith("U"):  # posting to a user ID writes in the DM with them
            channel = "D" + channel[1:]
        error = self._writable(channel)
        if error:
            return {"ok": False, "error": error}
        text = args.get("text") or ""
        if not text:
            return {"ok": False, "error": "no_text"}
        if len(text) > self.post_limit:
            return {"ok": False, "error": "msg_too_long"}
        blocks = parse_blocks(args["blocks"]) if "blocks" in args else []
        if isinstance(blocks, str):
            return {"ok": False, "error": blocks}
        ts = self.new_ts()
        message = Message(channel, ts, "", args.get("thread_ts") or None, BOT_USER, BOT_ID, blocks=blocks)
        message.show(text)
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": text, "ts": ts}}

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel.startswith("C"):
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        if channel in self.archived:
            return {"ok": False, "error": "is_archived"}
        if channel in self.not_in_channel:  # the fake's private channels: joining needs an invitation
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        if channel not in self.not_joined:
            return {"ok": True, "channel": {"id": channel}, "warning": "already_in_channel"}
        self.not_joined.discard(channel)
        return {"ok": True, "channel": {"id": channel}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.user != BOT_USER:
            return {"ok": False, "error": "cant_update_message"}
        text = args.get("text") or ""
        if not text:
            return {"ok": False, "error": "no_text"}
        if message.live_stream(self.stream_ttl):
            return {"ok": False, "error": "streaming_state_conflict"}
        if len(text) > self.update_limit:
            return {"ok": False, "error": "msg_too_long"}
        blocks = parse_blocks(args["blocks"]) if "blocks" in args else message.blocks  # absent: kept; []: removed
        if isinstance(blocks, str):
            return {"ok": False, "error": blocks}
        message.updates += 1
        message.blocks = blocks
        message.show(text)
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": text}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.live_stream(self.stream_ttl):
            return {"ok": False, "error": "cant_delete_message"}
        del self.messages[key]
        self.deleted.append(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    # native streaming (chat.startStream / appendStream / stopStream); text is Markdown, rendered by Slack

    def _chat_startStream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        error = self._writable(channel)
        if error:
            return {"ok": False, "error": error}
        if not self.native_streaming or (self.native_dm_only and not channel.startswith("D")):
            return {"ok": False, "error": "channel_type_not_supported"}
        if not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (args.get("recipient_user_id") and args.get("recipient_team_id")):
            return {"ok": False, "error": "invalid_arguments"}
        if len(str(args.get("markdown_text") or "")) > self.stream_limit:
            return {"ok": False, "error": "msg_too_long"}
        ts = self.new_ts()
        message = Message(
            channel, ts, "", args["thread_ts"], BOT_USER, BOT_ID, streaming=True, stream_started=time.monotonic()
        )
        message.show(str(args.get("markdown_text") or ""))
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts}

    def _streaming_message(self, args: dict[str, Any]) -> Message | str:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None:
            return "message_not_found"
        if stopped := self.stopped_by_user(message.channel, message.ts):
            return stopped  # a person pressed Slack's stop: checked first, the stream is no longer live
        if not message.live_stream(self.stream_ttl):
            return "message_not_in_streaming_state"
        # The limit is on the message's whole Markdown: everything streamed so far plus this payload.
        if len(message.text) + len(str(args.get("markdown_text") or "")) > self.stream_limit:
            return "msg_too_long"
        return message

    def _chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(args)
        if isinstance(message, str):
            return {"ok": False, "error": message}
        if not args.get("markdown_text"):
            return {"ok": False, "error": "no_text"}
        message.updates += 1
        message.show(message.text + str(args["markdown_text"]))
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(args)
        if isinstance(message, str):
            return {"ok": False, "error": message}
        blocks = parse_blocks(args["blocks"]) if "blocks" in args else []
        if isinstance(blocks, str):
            return {"ok": False, "error": blocks}
        if len(message.blocks) + len(blocks) > MAX_BLOCKS:
            return {"ok": False, "error": "invalid_blocks"}
        message.blocks = message.blocks + blocks  # under the streamed text
        message.streaming = False
        message.updates += 1
        message.show(message.text + str(args.get("markdown_text") or ""))
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        error = self._writable(str(args.get("channel", "")))
        if error:
            return {"ok": False, "error": error}
        self.ephemerals.append(args)
        return {"ok": True, "message_ts": self.new_ts()}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.thread_history_available:
            return {"ok": False, "error": "ratelimited"}
        channel, ts = str(args.get("channel") or ""), str(args.get("ts"))
        refused = self.history_refusal(channel)  # tests/fakes/slack_ai.py, as are replies_page's limits
        if refused:
            return {"ok": False, "error": refused}
        thread = sorted(
            (m for m in self.messages.values() if m.channel == channel and (m.ts == ts or m.thread_ts == ts)),
            key=lambda m: m.ts,
        )
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        messages = [
            {
                "type": "message",
                "ts": m.ts,
                "text": m.text,
                "user": m.user,
                "thread_ts": m.thread_ts,
                **({"bot_id": m.bot_id} if m.bot_id else {}),
                **({"files": m.files} if m.files else {}),
            }
            for m in thread
        ]
        return self.replies_page(messages, args)

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user"))
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": user, "name": user.lower(), "profile": {"display_name": self.users[user]}}}

    # reading what people see -------------------------------------------------------------------------

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Messages in a thread, oldest first (the parent included when it is known)."""
        return sorted(
            (
                m
                for m in self.messages.values()
                if m.channel == channel and (m.thread_ts == thread_ts or m.ts == thread_ts)
            ),
            key=lambda m: m.ts,
        )

    def bot_replies(self, channel: str, thread_ts: str) -> list[Message]:
        return [m for m in self.thread(channel, thread_ts) if m.user == BOT_USER and m.ts != thread_ts]

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # people writing: messages as Slack would deliver them --------------------------------------------

    def user_message(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, channel_type: str = "channel"
    ) -> dict[str, Any]:
        """Record a person's message in the channel and return its `message` event."""
        ts = self.new_ts()
        message = Message(channel, ts, "", thread_ts, user)
        message.show(text)
        self.messages[(channel, ts)] = message
        event: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "channel_type": channel_type,
            "team": TEAM,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    @staticmethod
    def as_mention(event: dict[str, Any]) -> dict[str, Any]:
        mention = {k: v for k, v in event.items() if k != "channel_type"}
        mention["type"] = "app_mention"
        return mention

    @staticmethod
    def envelope(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id or f"Ev{event['type']}{event['ts']}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
        }

    def command(self, command: str, text: str, *, user: str, channel: str) -> dict[str, str]:
        return {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0APP",
            "response_url": f"{self.url}/response/{self.new_ts()}",
            "trigger_id": "1.2.3",
        }

    # HTTP delivery (Events API and slash commands) --------------------------------------------------

    @staticmethod
    def sign(body: bytes, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    async def post_http(
        self,
        url: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        signed: bool = True,
    ) -> tuple[int, str]:
        all_headers = {"Content-Type": content_type, **(self.sign(body) if signed else {}), **(headers or {})}
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=all_headers) as r:
            return r.status, await r.text()

    async def deliver_http(
        self, url: str, event: dict[str, Any], *, retry_num: int | None = None, event_id: str | None = None
    ) -> tuple[int, str]:
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else {}
        body = json.dumps(self.envelope(event, event_id)).encode()
        return await self.post_http(url, body, headers=headers)

    async def command_http(self, url: str, payload: dict[str, str]) -> tuple[int, str]:
        from urllib.parse import urlencode

        return await self.post_http(url, urlencode(payload).encode(), content_type="application/x-www-form-urlencoded")

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    # Socket Mode ---------------------------------------------------------------------------------------
    #
    # Like Slack, the fake takes several connections at once (an app may open up to 10, one per instance of
    # it) and spreads envelopes over them. Each connection gets an id when it opens: 0, 1, 2, … in order, never
    # reused. An envelope whose connection closes before the app acknowledges it is lost on that connection:
    # sent to a connection the caller named, the send raises `EnvelopeLost` (the test decides what happens
    # next); sent without one, the fake redelivers it as Slack does, to another open connection with
    # `retry_attempt` + 1 (and `retry_reason` "timeout"), up to `SOCKET_REDELIVERIES` times.

    async def _socket_handler(self, request: web.Request) -> web.StreamResponse:
        if self.socket_unavailable:
            return web.Response(status=503, text="unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = SocketConnection(next(self._socket_ids), ws, time.monotonic())
        self.sockets[connection.id] = connection
        self._socket_changed()
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self.socket_connections),  # this one included
                    "debug_info": {"host": "fake"},
                    "connection_info": {"app_id": "A0APP"},
                }
            )
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                future = self._acks.pop(data.get("envelope_id", ""), None)
                if future is not None and not future.done():
                    future.set_result(data)
        finally:
            connection.closed = True
            self.sockets.pop(connection.id, None)
            for envelope_id in list(connection.pending):
                lost = self._acks.pop(envelope_id, None)
                if lost is not None and not lost.done():
                    lost.set_exception(EnvelopeLost(f"connection {connection.id} closed before {envelope_id}'s ack"))
            self._socket_changed()
        return ws

    def _socket_changed(self) -> None:
        changed, self._socket_change = self._socket_change, asyncio.Event()
        changed.set()

    @property
    def socket_connections(self) -> list[int]:
        """The ids of the open Socket Mode connections, oldest first."""
        return [c.id for c in self.sockets.values() if not c.closed and not c.ws.closed]

    async def socket_connected(self, timeout: float = 10, count: int = 1) -> None:
        """Wait until at least `count` Socket Mode connections are open (TimeoutError after `timeout` s)."""

        async def enough() -> None:
            while len(self.socket_connections) < count:
                await self._socket_change.wait()

        await asyncio.wait_for(enough(), timeout)

    async def close_socket(self, connection: int, *, disconnect: bool = True) -> None:
        """Slack's side closes a connection; with `disconnect`, after telling the app so, as on a refresh."""
        conn = self.sockets.get(connection)
        if conn is None:
            return
        if disconnect and not conn.ws.closed:
            await conn.ws.send_json({"type": "disconnect", "reason": "refresh_requested"})
        await conn.ws.close()

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        timeout: float = 3.0,
        connection: int | None = None,
    ) -> dict[str, Any]:
        """Send an envelope and return the app's ack; fails the test when no ack arrives within `timeout` s.

        `connection`: the id of the connection to use (`EnvelopeLost` if it is not open or closes before the
        ack). None: the next open connection, round robin (waiting up to 10 s for one); an envelope lost to a
        closing connection is redelivered on another one, with `retry_attempt` + 1.
        """
        if connection is not None:
            conn = self.sockets.get(connection)
            if conn is None or conn.closed or conn.ws.closed:
                raise EnvelopeLost(f"Socket Mode connection {connection} is not open")
            return await self._send_on(conn, kind, payload, retry_attempt, timeout)
        for attempt in range(retry_attempt, retry_attempt + SOCKET_REDELIVERIES + 1):
            await self.socket_connected()
            open_ids = self.socket_connections
            conn = self.sockets[open_ids[self._round_robin % len(open_ids)]]
            self._round_robin += 1
            try:
                return await self._send_on(conn, kind, payload, attempt, timeout)
            except EnvelopeLost:
                if attempt == retry_attempt + SOCKET_REDELIVERIES:
                    raise
        raise AssertionError("unreachable")

    async def _send_on(
        self, conn: SocketConnection, kind: str, payload: dict[str, Any], retry_attempt: int, timeout: float
    ) -> dict[str, Any]:
        envelope_id = f"env-{next(self._envelopes)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        conn.pending.add(envelope_id)
        sent = SocketSend(envelope_id, kind, conn.id, retry_attempt, time.monotonic())
        self.socket_sends.append(sent)
        try:
            if conn.closed:
                raise EnvelopeLost(f"connection {conn.id} closed before {envelope_id} was sent")
            try:
                await conn.ws.send_json(
                    {
                        "envelope_id": envelope_id,
                        "type": kind,
                        "payload": payload,
                        "accepts_response_payload": kind != "events_api",
                        "retry_attempt": retry_attempt,
                        "retry_reason": "timeout" if retry_attempt else "",
                    }
                )
            except (ConnectionError, RuntimeError) as exc:  # the connection is closing
                raise EnvelopeLost(f"connection {conn.id} closed before {envelope_id} was sent") from exc
            ack = await asyncio.wait_for(future, timeout)
            sent.acked = True
            return ack
        finally:
            conn.pending.discard(envelope_id)
            self._acks.pop(envelope_id, None)

    async def deliver_socket(
        self, event: dict[str, Any], *, retry_attempt: int = 0, connection: int | None = None
    ) -> dict[str, Any]:
        return await self.send_envelope(
            "events_api", self.envelope(event), retry_attempt=retry_attempt, connection=connection
        )

    # File hosting ----------------------------------------------------------------------------------------
    #
    # Files are served as Slack serves them: `url_private` is /files-pri/T0TEAM-<id>/<name> and
    # `url_private_download` /files-pri/T0TEAM-<id>/download/<name>, on the fake's own address (the host of
    # its Web API, as a proxy in front of Slack would serve both). A download needs `Authorization: Bearer` +
    # the bot token; without it Slack answers 200 with an HTML sign-in page, and so does the fake. A deleted
    # file answers 404. Bodies go out in FILE_PIECE pieces and each request's `bytes_sent` is counted, so a
    # test can tell that a reader stopped early.

    def host_file(
        self,
        data: bytes,
        name: str,
        mimetype: str,
        *,
        filetype: str | None = None,
        title: str | None = None,
        user: str = "U0ADA",
        size: int | None = None,
        chunked: bool = False,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Host `data` as a file and return the file object an event's `files` would carry.

        `size`: what the object claims (default: the true size); `chunked`: send no Content-Length;
        `content_type`: the download's Content-Type when it should differ from `mimetype`.
        """
        file_id = f"F{next(self._file_ids):07d}"
        filetype = filetype or (name.rsplit(".", 1)[-1].lower() if "." in name else "text")
        base = f"{self.url}/files-pri/{TEAM}-{file_id}"
        obj: dict[str, Any] = {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": title or name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": TEAM,
            "editable": False,
            "size": len(data) if size is None else size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/{name}",
            "url_private_download": f"{base}/download/{name}",
            "permalink": f"https://test.slack.com/files/{user}/{file_id}/{name}",
            "has_rich_preview": False,
        }
        self.hosted_files[file_id] = HostedFile(
            file_id, name, mimetype, filetype, data, obj, chunked=chunked, content_type=content_type
        )
        return dict(obj)

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a hosted file (downloads answer 404) and return its tombstone, as Slack shows a deleted file."""
        self.hosted_files[file_id].deleted = True
        return {"id": file_id, "mode": "tombstone"}

    def file_message(
        self,
        channel: str,
        user: str,
        text: str,
        files: list[dict[str, Any]],
        *,
        thread_ts: str | None = None,
        channel_type: str = "channel",
    ) -> dict[str, Any]:
        """A person's message sharing `files` (from `host_file`): the `file_share` message event Slack sends."""
        event = self.user_message(channel, user, text, thread_ts=thread_ts, channel_type=channel_type)
        self.messages[(channel, event["ts"])].files = list(files)
        event["subtype"] = "file_share"
        event["files"] = list(files)
        event["upload"] = False
        return event

    def downloads_of(self, file_id: str) -> list[FileDownload]:
        return [d for d in self.file_downloads if d.file_id == file_id]

    async def _file_download(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        file_id = key.split("-", 1)[1] if key.startswith(f"{TEAM}-") else ""
        hosted = self.hosted_files.get(file_id)
        authorized = request.headers.get("Authorization") == f"Bearer {BOT_TOKEN}"
        record = FileDownload(file_id, request.path, authorized, 200)
        self.file_downloads.append(record)
        if not authorized:  # Slack's answer to a missing or wrong token, or one without files:read
            record.finished = True
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html")
        if hosted is None or hosted.deleted:
            record.status, record.finished = 404, True
            return web.Response(status=404, text="File not found", content_type="text/plain")
        if hosted.fail_status is not None:
            record.status, record.finished = hosted.fail_status, True
            page = "<html>Slack is having trouble</html>"
            return web.Response(status=hosted.fail_status, text=page, content_type="text/html")
        if hosted.redirect_to is not None:
            record.status, record.finished = 302, True
            return web.Response(status=302, headers={"Location": hosted.redirect_to})
        response = web.StreamResponse(headers={"Content-Type": hosted.content_type or hosted.mimetype})
        if not hosted.chunked:
            response.content_length = len(hosted.data)
        try:
            await response.prepare(request)
            view = memoryview(hosted.data)
            for start in range(0, len(view), FILE_PIECE):
                piece = view[start : start + FILE_PIECE]
                await response.write(piece.tobytes())
                record.bytes_sent += len(piece)
            await response.write_eof()
            record.complete = True
        except (ConnectionError, RuntimeError):  # the reader went away mid-body (RuntimeError: closing transport)
            pass
        finally:
            record.finished = True
        return response

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        hosted = self.hosted_files.get(str(args.get("file") or ""))
        if hosted is None:
            return {"ok": False, "error": "file_not_found"}
        if hosted.deleted:
            return {"ok": False, "error": "file_deleted"}
        return {"ok": True, "file": dict(hosted.object), "comments": [], "response_metadata": {"next_cursor": ""}}
