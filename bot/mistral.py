"""The model client: Mistral's chat-completions endpoint over httpx, streamed as Server-Sent Events.

Failures become `ModelError`s with a `kind` the conversation can explain to people; the raw details go to
the log only. Retries of refused or failed *starts* happen here, within a time budget; a stream that breaks
after text was shown is never retried, since its text is already in Slack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import httpx

from bot.core import fast_json
from bot.core.retry import RETRYABLE_STATUSES, backoff_delay, parse_retry_after
from bot.core.sse import DONE, Delta, Finish, SSEParser, read_chunk
from bot.paced_http import PacedTransport, streamed

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_TOKENS = 32_768
# After a `GET /v1/models` that did not give a model's size, the fallback serves until this many seconds pass.
CONTEXT_LOOKUP_RETRY = 60.0
# The models list is small: waiting longer than this for it only delays an answer.
CONTEXT_LOOKUP_TIMEOUT = 10.0


class ErrorKind(Enum):
    AUTH = "auth"  # 401/403: the key is wrong or lacks access
    MODEL = "model"  # 404: unknown or retired model
    REFUSED = "refused"  # 400/422: the request was refused (too long, bad settings)
    RATE_LIMITED = "rate_limited"  # 429 after the retry budget
    UNAVAILABLE = "unavailable"  # 5xx or unreachable after the retry budget
    TIMEOUT = "timeout"  # no data for longer than the idle timeout, or the total timeout passed
    INTERRUPTED = "interrupted"  # the stream broke mid-answer or reported finish_reason=error


class ModelError(Exception):
    def __init__(
        self, kind: ErrorKind, detail: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{kind.value}: {detail}" + (f" (HTTP {status})" if status else ""))
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES or (self.status is None and self.kind is ErrorKind.UNAVAILABLE)


def error_message(body: bytes) -> str:
    """The human part of any of the error bodies Mistral is known to send; never raises."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace") or "no details"
    return _described(data) or "an error body of an unknown shape"


def _described(data: object) -> str | None:
    """Only the fields that describe an error: a validation error's `input` may quote what people wrote, and
    the message ends up in the log."""
    if not isinstance(data, dict):
        return None
    for key in ("message", "detail"):
        value = data.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # FastAPI-style validation errors
            return "; ".join(
                f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}" for e in value if isinstance(e, dict)
            )
        if isinstance(value, dict):  # Mistral's 422: {"message": {"detail": [...]}}
            return _described(value)
    return None


_STATUS_KINDS = {
    401: ErrorKind.AUTH,
    403: ErrorKind.AUTH,
    404: ErrorKind.MODEL,
    400: ErrorKind.REFUSED,
    422: ErrorKind.REFUSED,
    429: ErrorKind.RATE_LIMITED,
}


def status_error(status: int, body: bytes, retry_after: float | None) -> ModelError:
    kind = _STATUS_KINDS.get(status, ErrorKind.UNAVAILABLE if status >= 500 else ErrorKind.REFUSED)
    return ModelError(kind, error_message(body), status=status, retry_after=retry_after)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    idle: float = 60.0  # the longest gap between two pieces of a stream
    total: float = 600.0  # one answer, start to finish
    retry_budget: float = 60.0  # time spent retrying a refused start


RetryHook = Callable[[ModelError, int, float], Awaitable[None]]
# Seconds between two reads of a model stream (see `bot.paced_http`): half the interval at which Slack shows
# an answer grow, so the text shown is never more than this much behind the model.
READ_PAUSE = 0.5
CHAT_PATH = "/v1/chat/completions"
JSON_BODY = {"Content-Type": "application/json"}  # the body is encoded here (`fast_json`), not by httpx


class MistralClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeouts: Timeouts,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        read_pause: float = READ_PAUSE,
        metrics: Metrics | None = None,
    ) -> None:
        self._timeouts = timeouts
        self._metrics = metrics
        self._http = client or httpx.AsyncClient(
            transport=PacedTransport(pause=read_pause),
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"},
            timeout=httpx.Timeout(timeouts.idle, connect=timeouts.connect),
        )
        self._clock = clock
        self._context: dict[str, int] = {}  # real answers only
        self._next_lookup = float("-inf")
        self._lookup_lock = asyncio.Lock()  # concurrent turns share one lookup

    async def aclose(self) -> None:
        await self._http.aclose()

    async def context_length(self, model: str) -> int:
        """The model's context window from `GET /v1/models` (aliases move, so never hard-coded).

        Only real answers are cached. When the list cannot be read, or does not name the model, the fallback
        serves this turn and the list is read again no sooner than `CONTEXT_LOOKUP_RETRY` seconds later.
        """
        if model in self._context:
            return self._context[model]
        async with self._lookup_lock:
            if model not in self._context and self._clock() >= self._next_lookup:
                await self._read_context_sizes()
                if model not in self._context:
                    self._next_lookup = self._clock() + CONTEXT_LOOKUP_RETRY
        return self._context.get(model, DEFAULT_CONTEXT_TOKENS)

    async def _read_context_sizes(self) -> None:
        try:
            response = await self._http.get(
                "/v1/models",
                headers={"Accept": "application/json"},
                timeout=httpx.Timeout(CONTEXT_LOOKUP_TIMEOUT, connect=self._timeouts.connect),
            )
            response.raise_for_status()
            for entry in response.json().get("data", []):
                names = [entry.get("id"), *(entry.get("aliases") or [])]
                length = entry.get("max_context_length")
                if isinstance(length, int):
                    for name in names:
                        if isinstance(name, str):
                            self._context.setdefault(name, length)
        except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
            log.warning(
                "could not read model context sizes (%r); assuming %d tokens for now", exc, DEFAULT_CONTEXT_TOKENS
            )

    async def stream(self, body: dict[str, Any], on_retry: RetryHook | None = None) -> AsyncIterator[Delta | Finish]:
        """Stream one answer. Retries 429/5xx/unreachable *before the first chunk* within the retry budget.

        With metrics: each attempt's duration and error, retries, the time from the first attempt to the first
        text, and the usage the model reports.
        """
        asked = time.monotonic()
        deadline = asked + self._timeouts.retry_budget
        measured = self._metrics.model(str(body.get("model") or "")) if self._metrics is not None else None
        attempt = 0
        first_text = True
        while True:
            attempt += 1
            started = False
            began = time.monotonic()
            try:
                async for item in self._stream_once(body):
                    started = True
                    if measured is not None:
                        if first_text and isinstance(item, Delta):
                            first_text = False
                            measured.first_token(time.monotonic() - asked)
                        elif isinstance(item, Finish):
                            measured.tokens(item.prompt_tokens, item.completion_tokens, item.cached_tokens)
                    yield item
                if measured is not None:
                    measured.operation(time.monotonic() - began)
                return
            except ModelError as exc:
                if measured is not None:
                    measured.operation(time.monotonic() - began, exc.kind.value)
                if started or not exc.retryable:
                    raise
                delay = backoff_delay(attempt, retry_after=exc.retry_after)
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("model API attempt %d failed (%s); retrying in %.1fs", attempt, exc, delay)
                if measured is not None:
                    measured.retry(exc.kind.value)
                if on_retry is not None:
                    await on_retry(exc, attempt, delay)
                await asyncio.sleep(delay)
            except (asyncio.CancelledError, GeneratorExit):
                # Stopped by a person, the total timeout or shutdown: the request ended without an answer.
                if measured is not None:
                    measured.operation(time.monotonic() - began, "cancelled")
                raise

    async def _stream_once(self, body: dict[str, Any]) -> AsyncIterator[Delta | Finish]:
        finished = responded = False
        try:
            content = fast_json.dumps_bytes(body)
            async with streamed(self._http, "POST", CHAT_PATH, content=content, headers=JSON_BODY) as response:
                if response.status_code != 200:
                    raw = await response.aread()
                    raise status_error(
                        response.status_code, raw, parse_retry_after(response.headers.get("retry-after"))
                    )
                responded = True
                parser = SSEParser()
                async for piece in response.aiter_bytes():
                    text, finish, done = _read_events(parser, piece)
                    if text:
                        yield Delta(text)  # the events of one read, shown together anyway
                    if finish is not None:
                        finished = True
                        if finish.reason == "error":
                            raise ModelError(ErrorKind.INTERRUPTED, "the model reported finish_reason=error")
                        yield finish
                    if done:
                        finished = True
                        break
        except httpx.HTTPError as exc:
            if responded and not isinstance(exc, httpx.ReadTimeout):
                # The model had answered: whatever the transport calls it, the stream broke off.
                raise ModelError(ErrorKind.INTERRUPTED, f"stream broke: {exc!r}") from exc
            raise self._transport_error(exc) from exc
        if not finished:
            raise ModelError(ErrorKind.INTERRUPTED, "the stream ended before the answer was complete")

    def _transport_error(self, exc: httpx.HTTPError) -> ModelError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            # Nothing reached the model yet: as retryable as a 503. (ConnectTimeout and PoolTimeout are
            # TimeoutExceptions too, so they must be caught before the read timeouts below.)
            return ModelError(ErrorKind.UNAVAILABLE, f"cannot connect: {exc!r}")
        if isinstance(exc, httpx.TimeoutException):
            return ModelError(ErrorKind.TIMEOUT, f"no data for {self._timeouts.idle:g}s")
        return ModelError(ErrorKind.INTERRUPTED, f"stream broke: {exc!r}")


def _read_events(parser: SSEParser, piece: bytes) -> tuple[str, Finish | None, bool]:
    """One read of the stream → the text it adds, the finish it reports, and whether `[DONE]` came."""
    text: list[str] = []
    finish: Finish | None = None
    for data in parser.feed_bytes(piece):
        if data == DONE or (len(data) < 16 and data.strip() == DONE):
            return "".join(text), finish, True
        try:
            added, ended = read_chunk(data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelError(ErrorKind.INTERRUPTED, f"malformed chunk: {exc}") from exc
        text.append(added)
        finish = ended or finish
    return "".join(text), finish, False
