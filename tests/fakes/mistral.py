"""A fake Mistral chat-completions endpoint on 127.0.0.1, refusing what the real one refuses.

Unknown request fields get 422 `extra_forbidden`, role-order mistakes 400, unknown models 404, a wrong key
401; streams are SSE with a padding key `p`, a role-only first chunk, usage on the last chunk, then
`data: [DONE]`. Tests queue `Script`s to choose answers, pacing and faults. A message's content may be a list of
chunks (text, image_url, document_url), checked as the API checks them (see "Content chunks" below).

A request ending with an assistant message with `prefix: true` is answered as Mistral does: the streamed
content begins with the prefix text (see `answer_text` and `Script.chunks`).

Prompt caching as Mistral reports it: a request with a `prompt_cache_key` gets
`usage.prompt_tokens_details.cached_tokens`, the fake's token estimate of the messages it shares from the start
with the previous request of that key (0 the first time; see `cached_prompt_tokens`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import json
import random
import socket
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

API_KEY = "test-mistral-key"
MODELS = {"mistral-large-latest": 131_072, "mistral-small-latest": 32_768, "tiny-test-model": 1_024}

ACCEPTED = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "safe_prompt",
    "prediction",
    "parallel_tool_calls",
    "prompt_mode",
    "reasoning_effort",
    "metadata",
    "guardrails",
    "prompt_cache_key",
    "service_tier",
}
MESSAGE_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "prefix"},
    "tool": {"role", "content", "tool_call_id", "name"},
}


@dataclass
class Script:
    """One answer: `chunks` of text, or a fault. `status` answers before any stream.

    When the request ends with a `prefix: true` assistant message, the content begins with its text: unless
    the chunks joined already start with the prefix, the prefix is sent first, as a chunk of its own (which
    `cut_after` and `hang_after` do not count: they count the script's chunks).
    """

    chunks: list[str] | None = None  # None: echo the question (see `answer_text`)
    finish_reason: str = "stop"
    delay: float = 0.0  # seconds before each chunk
    status: int | None = None
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # close the connection after this many text chunks, no [DONE]
    hang_after: int | None = None  # stop sending (keep the connection open) after this many chunks


def echo_answer(messages: list[dict[str, Any]]) -> str:
    last = next(m for m in reversed(messages) if m["role"] == "user")
    content = last["content"] if isinstance(last["content"], str) else describe_content(last["content"])
    return f"You said: {content}"


def prefix_of(body: dict[str, Any]) -> str | None:
    """The text of a request's final `prefix: true` assistant message, else None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "assistant" or not last.get("prefix"):
        return None
    content = last.get("content")
    return content if isinstance(content, str) else None


def answer_text(messages: list[dict[str, Any]], prefix: str | None = None) -> str:
    """The echo answer, beginning with `prefix` when there is one.

    An echo that already starts with the prefix is returned as it is, so a turn continued from part of its
    own answer (the part sent as the prefix) comes out exactly as the uninterrupted answer would.
    """
    text = echo_answer(messages)
    if prefix and not text.startswith(prefix):
        return prefix + text
    return text


# Content chunks --------------------------------------------------------------------------------------------
#
# A message's `content` is a string or a list of chunks, as Mistral's API takes it: `text` ({"text": str}),
# `image_url` (a string, or {"url": str, "detail"?: "low" | "auto" | "high"}) and `document_url` (a string) in
# user messages; only text chunks elsewhere. Schema mistakes (an unknown type, a missing or extra field) answer
# 422; a URL Mistral could not fetch (Slack's private file hosts, loopback and private addresses) or data that
# is not what its data: URL says answers 400, as the real service does when it cannot load an image.

CHUNK_FIELDS = {
    "text": ({"type", "text"}, {"type", "text"}),  # (required, allowed)
    "image_url": ({"type", "image_url"}, {"type", "image_url"}),
    "document_url": ({"type", "document_url"}, {"type", "document_url", "document_name"}),
}
IMAGE_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_REQUEST_BYTES = 128 * 1024 * 1024  # a request body the fake reads (aiohttp's default is 1 MB)
# What an attachment costs in the fake's token estimate (a flat figure: the fake does not decode images).
IMAGE_TOKENS = 1_500
DOCUMENT_TOKENS = 3_000
_UNFETCHABLE_DOMAINS = ("slack.com", "slack-edge.com", "localhost", "internal", "local")


@dataclass(frozen=True)
class Attachment:
    """An image or document a request carried, decoded from its data: URL (or the URL itself)."""

    type: str  # "image_url" | "document_url"
    mime: str  # from the data: URL ("" for a remote URL)
    data: bytes  # b"" for a remote URL
    url: str  # the remote URL, or "" for data


def _chunk_error(status: int, loc: list[Any], message: str, kind: str) -> tuple[int, dict[str, Any]]:
    if status == 422:
        return status, {"detail": [{"type": kind, "loc": ["body", *loc], "msg": message}]}
    return status, {"object": "error", "message": message, "type": kind, "param": None, "code": "3051"}


def _unfetchable(url: str) -> bool:
    """A URL Mistral's servers cannot fetch: private Slack hosts, loopback, private networks."""

    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host:
        return True
    if any(host == d or host.endswith("." + d) for d in _UNFETCHABLE_DOMAINS):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved


def decode_data_url(url: str) -> tuple[str, bytes] | None:
    """(mime, bytes) of a base64 data: URL, or None when it is not one or its base64 is broken."""

    if not url.startswith("data:") or ";base64," not in url:
        return None
    mime, payload = url[5:].split(";base64,", 1)
    try:
        return mime.lower(), base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def check_url(kind: str, url: Any, loc: list[Any], *, refuse: bool) -> tuple[int, dict[str, Any]] | None:
    """An image_url / document_url value's URL as Mistral would load it; None when it loads."""
    noun = "Image" if kind == "image_url" else "Document"
    if not isinstance(url, str) or not url:
        return _chunk_error(422, loc, "Input should be a valid string", "string_type")
    if refuse:
        return _chunk_error(400, loc, f"{noun} input is not supported by this model", "invalid_request_error")
    if url.startswith("data:"):
        decoded = decode_data_url(url)
        if decoded is None:
            return _chunk_error(400, loc, f"{noun} data URL is not valid base64", "invalid_request_file")
        mime, data = decoded
        if kind == "image_url":
            magic = IMAGE_MAGIC.get(mime)
            if magic is None or not data.startswith(magic):
                return _chunk_error(400, loc, f"Unsupported or invalid image ({mime})", "invalid_request_file")
            if len(data) > MAX_IMAGE_BYTES:
                return _chunk_error(400, loc, "Image is too large", "invalid_request_file")
        else:
            if mime != "application/pdf" or b"%PDF-" not in data[:1024]:
                return _chunk_error(400, loc, f"Unsupported or invalid document ({mime})", "invalid_request_file")
            if len(data) > MAX_DOCUMENT_BYTES:
                return _chunk_error(400, loc, "Document is too large", "invalid_request_file")
        return None
    if not url.startswith(("https://", "http://")):
        return _chunk_error(400, loc, f"{noun} URL must be http(s) or a data URL", "invalid_request_file")
    if _unfetchable(url):
        return _chunk_error(400, loc, f"{noun} could not be downloaded from the URL given", "invalid_request_file")
    return None


def check_content(
    role: str, content: Any, loc: list[Any], *, refuse_images: bool = False, refuse_documents: bool = False
) -> tuple[int, dict[str, Any]] | None:
    """A message's content as the API checks it: (status, body) of the refusal, or None."""
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return _chunk_error(422, [*loc, "content"], "Input should be a valid string or list", "string_type")
    for j, chunk in enumerate(content):
        at = [*loc, "content", j]
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind not in CHUNK_FIELDS:
            return _chunk_error(
                422,
                at,
                f"Input tag '{kind}' found using 'type' does not match any of the expected tags",
                "union_tag_invalid",
            )
        if kind != "text" and role != "user":
            return _chunk_error(422, at, f"{kind} chunks are only allowed in user messages", "union_tag_invalid")
        required, allowed = CHUNK_FIELDS[kind]
        if missing := sorted(required - set(chunk)):
            return _chunk_error(422, [*at, missing[0]], "Field required", "missing")
        if extra := sorted(set(chunk) - allowed):
            return _chunk_error(422, [*at, extra[0]], "Extra inputs are not permitted", "extra_forbidden")
        if kind == "text":
            if not isinstance(chunk["text"], str):
                return _chunk_error(422, [*at, "text"], "Input should be a valid string", "string_type")
            continue
        value = chunk[kind]
        if kind == "image_url" and isinstance(value, dict):
            if extra := sorted(set(value) - {"url", "detail"}):
                return _chunk_error(422, [*at, kind, extra[0]], "Extra inputs are not permitted", "extra_forbidden")
            if value.get("detail") not in (None, "low", "auto", "high"):
                return _chunk_error(422, [*at, kind, "detail"], "Input should be 'low', 'auto' or 'high'", "enum")
            value = value.get("url")
        refuse = refuse_images if kind == "image_url" else refuse_documents
        refused = check_url(kind, value, [*at, kind], refuse=refuse)
        if refused is not None:
            return refused
    return None


def chunk_url(chunk: dict[str, Any]) -> str:
    value = chunk.get(chunk.get("type", ""), "")
    return str(value.get("url", "")) if isinstance(value, dict) else str(value)


def attachments(body: dict[str, Any]) -> list[Attachment]:
    """Every image and document of a request's messages, in order, decoded (tests compare the exact bytes)."""
    found: list[Attachment] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for chunk in content:
            if isinstance(chunk, dict) and chunk.get("type") in ("image_url", "document_url"):
                url = chunk_url(chunk)
                decoded = decode_data_url(url)
                if decoded is None:
                    found.append(Attachment(chunk["type"], "", b"", url))
                else:
                    found.append(Attachment(chunk["type"], decoded[0], decoded[1], ""))
    return found


def describe_content(content: list[Any]) -> str:
    """A chunk list as the echo answer shows it: text as it is, attachments as a short label (never base64)."""

    parts: list[str] = []
    for chunk in content:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("type") == "text":
            parts.append(str(chunk.get("text", "")))
            continue
        decoded = decode_data_url(chunk_url(chunk))
        if decoded is None:
            parts.append(f"[{chunk.get('type')}: {chunk_url(chunk)}]")
        else:
            mime, data = decoded
            parts.append(
                f"[{chunk.get('type')}: {mime}, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}]"
            )
    return "\n".join(parts)


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """The characters the fake's token estimate counts: text as it is, attachments at a flat cost."""
    total = 0
    for m in messages:
        content = m.get("content", "")
        if not isinstance(content, list):
            total += len(str(content))
            continue
        for chunk in content:
            kind = chunk.get("type") if isinstance(chunk, dict) else None
            if kind == "image_url":
                total += IMAGE_TOKENS * 4
            elif kind == "document_url":
                total += DOCUMENT_TOKENS * 4
            else:
                total += len(str(chunk.get("text", "") if isinstance(chunk, dict) else chunk))
    return total


class FakeMistral:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        # Accepted chat requests that ended with a `prefix: true` assistant message (`prefix_of` reads it).
        self.prefixed_requests: list[dict[str, Any]] = []
        self.request_times: list[float] = []
        self.last_chunk_at: dict[str, float] = {}  # question → when its answer's last text chunk was sent
        self.scripts: deque[Script] = deque()
        self.default_delay = 0.0
        self.chunk_size = 12
        self.hangs: list[asyncio.Event] = []
        self.models_requests = 0
        self.models_failures = 0  # answer this many `GET /v1/models` with a 503 before answering properly
        self.abandoned = 0  # streams the client closed before their end: no more tokens were generated for them
        self.usages: list[dict[str, Any]] = []  # the usage of every stream that finished, as it was sent
        # prompt_cache_key → the messages of the last request streamed with it (what the prompt cache holds)
        self.prompt_cache: dict[str, list[dict[str, Any]]] = {}
        # A model without vision (or a server without documents): image_url / document_url chunks answer 400.
        self.refuse_images = False
        self.refuse_documents = False
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)  # images and PDFs travel inside the JSON
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for hang in self.hangs:
            hang.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def queue(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "messages" in r]

    async def _models(self, request: web.Request) -> web.Response:
        self.models_requests += 1
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"detail": "Unauthorized"}, status=401)
        if self.models_failures > 0:
            self.models_failures -= 1
            return web.json_response({"message": "Service unavailable"}, status=503)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "max_context_length": size, "aliases": []}
                    for name, size in MODELS.items()
                ],
            }
        )

    @staticmethod
    def _error(status: int, body: dict[str, Any]) -> web.Response:
        return web.json_response(body, status=status)

    def _validate(self, request: web.Request, body: Any) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error(401, {"message": "Unauthorized", "request_id": "req-1"})
        if not isinstance(body, dict):
            return self._error(422, {"detail": [{"loc": ["body"], "msg": "not an object", "type": "model_type"}]})
        extra = sorted(set(body) - ACCEPTED)
        if extra:
            return self._error(
                422,
                {
                    "detail": [
                        {"type": "extra_forbidden", "loc": ["body", k], "msg": "Extra inputs are not permitted"}
                        for k in extra
                    ]
                },
            )
        if body.get("model") not in MODELS:
            return self._error(
                404,
                {
                    "object": "error",
                    "message": f"Invalid model: {body.get('model')}",
                    "type": "invalid_model",
                    "param": None,
                    "code": "1500",
                },
            )
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 1.5:
            return self._error(
                422,
                {
                    "detail": [
                        {
                            "type": "less_than_equal",
                            "loc": ["body", "temperature"],
                            "msg": "Input should be less than or equal to 1.5",
                        }
                    ]
                },
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._error(422, {"detail": [{"type": "missing", "loc": ["body", "messages"], "msg": "required"}]})
        for i, m in enumerate(messages):
            role = m.get("role")
            if role not in MESSAGE_FIELDS or set(m) - MESSAGE_FIELDS[role]:
                return self._error(
                    422,
                    {
                        "detail": [
                            {
                                "type": "extra_forbidden",
                                "loc": ["body", "messages", i],
                                "msg": "Extra inputs are not permitted",
                            }
                        ]
                    },
                )
            refused = self._check_content(i, m)
            if refused is not None:
                return refused
            if m.get("prefix") and i != len(messages) - 1:
                return self._bad_request("An assistant message with prefix=True must be the last message")
        last = messages[-1]
        if last["role"] not in ("user", "tool") and not (last["role"] == "assistant" and last.get("prefix")):
            return self._bad_request("Expected last role User or Tool (or Assistant with prefix True) for serving")
        total = prompt_chars(messages) // 4
        if total > MODELS[body["model"]]:
            return self._bad_request(f"Prompt contains {total} tokens, too large for model")
        return None

    def _check_content(self, index: int, message: dict[str, Any]) -> web.Response | None:
        refused = check_content(
            str(message.get("role")),
            message.get("content"),
            ["messages", index],
            refuse_images=self.refuse_images,
            refuse_documents=self.refuse_documents,
        )
        return None if refused is None else self._error(*refused)

    def _bad_request(self, message: str) -> web.Response:
        return self._error(
            400,
            {
                "object": "error",
                "message": message,
                "type": "invalid_request_message_order",
                "param": None,
                "code": "3230",
            },
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self._error(400, {"detail": "Invalid JSON"})
        self.requests.append(body if isinstance(body, dict) else {"invalid": body})
        self.request_times.append(time.monotonic())
        script = self.scripts.popleft() if self.scripts else Script()
        if script.status is not None:
            payload = script.body if script.body is not None else {"message": "fault", "type": "test"}
            text = payload if isinstance(payload, str) else json.dumps(payload)
            return web.Response(
                status=script.status, text=text, headers=script.headers, content_type="application/json"
            )
        refused = self._validate(request, body)
        if refused is not None:
            return refused
        if not body.get("stream"):
            return self._error(400, {"detail": "this fake only streams"})
        if prefix_of(body) is not None:
            self.prefixed_requests.append(body)
        return await self._stream(request, body, script)

    def cached_prompt_tokens(self, body: dict[str, Any]) -> int | None:
        """What the prompt cache serves of a request (None without a `prompt_cache_key`), and it is cached."""
        key = body.get("prompt_cache_key")
        if not isinstance(key, str):
            return None
        messages = body["messages"]
        before = self.prompt_cache.get(key, [])
        shared = 0
        while shared < min(len(before), len(messages)) and before[shared] == messages[shared]:
            shared += 1
        self.prompt_cache[key] = messages
        return prompt_chars(messages[:shared]) // 4

    async def _stream(self, request: web.Request, body: dict[str, Any], script: Script) -> web.StreamResponse:
        prefix = prefix_of(body)
        lead: str | None = None  # a chunk sent before the script's own: the prefix, when they lack it
        if script.chunks is None:
            text = answer_text(body["messages"], prefix)
            chunks = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        else:
            chunks = script.chunks
            if prefix and not "".join(chunks).startswith(prefix):
                lead = prefix
        cached = self.cached_prompt_tokens(body)  # the prompt is read (and cached) before the answer is written
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        chunk_id = f"cmpl-{random.randrange(10**9)}"

        async def send(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> None:
            payload: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                "p": "".join(random.choices(string.ascii_letters, k=random.randint(1, 24))),
            }
            if usage:
                payload["usage"] = usage
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())

        try:
            return await self._send_chunks(request, body, script, chunks, send, response, lead, cached)
        except ConnectionError:  # the client went away mid-answer (aiohttp's reset errors are ConnectionErrors)
            self.abandoned += 1
            return response

    async def _send_chunks(
        self,
        request: web.Request,
        body: dict[str, Any],
        script: Script,
        chunks: list[str],
        send: Callable[..., Awaitable[None]],
        response: web.StreamResponse,
        lead: str | None = None,
        cached: int | None = None,
    ) -> web.StreamResponse:
        await send({"role": "assistant", "content": ""})
        if lead:
            await send({"content": lead})
        for i, chunk in enumerate(chunks):
            if script.cut_after is not None and i == script.cut_after:
                request.transport.close()  # type: ignore[union-attr]  # the connection drops mid-answer
                return response
            if script.hang_after is not None and i == script.hang_after:
                hang = asyncio.Event()
                self.hangs.append(hang)
                await hang.wait()
                return response
            delay = script.delay or self.default_delay
            if delay:
                await asyncio.sleep(delay)
            await send({"content": chunk})
        question = next(m for m in reversed(body["messages"]) if m["role"] == "user")["content"]
        self.last_chunk_at[str(question)] = time.monotonic()
        prompt_tokens = prompt_chars(body["messages"]) // 4
        completion = max(1, (len(lead or "") + sum(len(c) for c in chunks)) // 4)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
        if cached is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        self.usages.append(usage)
        await send({"content": ""}, script.finish_reason, usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers a byte: a server that hangs before responding."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(65536):  # read the request, answer nothing, until the client leaves
            pass

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class UnreachableServer:
    """A port where connecting hangs: a listener whose backlog is full, so the kernel drops new SYNs.

    Connections here end in a connect timeout, as with a firewalled or unroutable host.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._fillers = []
        for _ in range(3):  # fill the accept queue; nobody ever accepts
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self._fillers.append(filler)

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
