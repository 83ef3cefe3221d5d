"""Server-Sent Events from Mistral's streaming chat endpoint → typed chunks.

Parsing is defensive: unknown keys (such as the random padding key `p`) are ignored, content may be a
string or a list of typed chunks (reasoning models send `thinking` chunks, which are not shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core import fast_json

DONE = "[DONE]"


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finish:
    reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens the model's prompt cache served (a part of prompt_tokens)


class SSEParser:
    """Feed lines of an event stream; yields each event's `data` once the event is complete."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._partial = b""  # the start of a line whose end has not arrived yet

    def feed_bytes(self, piece: bytes) -> list[str]:
        """Feed raw bytes as they arrive (any split, even inside a character); returns completed events.

        A model's stream is hundreds of one-line events (`data: {...}` and a blank line): those are cut out
        whole, without a pass per line. Anything else (comments, several lines, CR line ends) goes by line.
        """
        buf = self._partial + piece
        if b"\r" in buf or self._data:  # CR line ends, or an event the line path left open
            lines = buf.split(b"\n")
            self._partial = lines.pop()  # the start of a line whose end has not arrived yet
            return self._feed_lines(lines)
        *blocks, self._partial = buf.split(b"\n\n")  # "\n" never occurs inside a UTF-8 character
        events = []
        for block in blocks:
            if not self._data and block.startswith(b"data: ") and b"\n" not in block:
                events.append(block[6:].decode("utf-8", "replace"))
            else:
                events.extend(self._feed_lines([*block.split(b"\n"), b""]))
        return events

    def _feed_lines(self, lines: list[bytes]) -> list[str]:
        events = []
        for line in lines:
            data = self.feed(line.decode("utf-8", "replace"))
            if data is not None:
                events.append(data)
        return events

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r")
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None  # a comment, used as a keep-alive
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None


def parse_chunk(data: str) -> list[Delta | Finish]:
    """One `data:` payload → the text it adds and, on the last chunk, how the answer finished."""
    text, finish = read_chunk(data)
    out: list[Delta | Finish] = [Delta(text)] if text else []
    return [*out, finish] if finish is not None else out


def read_chunk(data: str) -> tuple[str, Finish | None]:
    """One `data:` payload → (the text it adds, how the answer finished if this is the last chunk)."""
    payload = fast_json.loads(data)
    if not isinstance(payload, dict):
        raise ValueError("chunk is not a JSON object")
    choices = payload.get("choices") or []
    choice: dict[str, Any] = choices[0] if choices and isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or {}
    content = delta.get("content")
    text = content if isinstance(content, str) else content_text(content)
    reason = choice.get("finish_reason")
    if not reason:
        return text, None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    return text, Finish(
        reason=str(reason),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        total_tokens=usage.get("total_tokens"),
        cached_tokens=cached_tokens(usage),
    )


def cached_tokens(usage: dict[str, Any]) -> int | None:
    """Cached prompt tokens, wherever the API put them (`prompt_tokens_details.cached_tokens`, or
    `num_cached_tokens`); None when it said nothing usable."""
    details = usage.get("prompt_tokens_details")
    found = details.get("cached_tokens") if isinstance(details, dict) else None
    if not _count(found):
        found = usage.get("num_cached_tokens")
    return found if _count(found) else None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def content_text(content: Any) -> str:
    """A message's `content`: a string, or a list of chunks of which only `text` chunks are shown."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")
    return ""
