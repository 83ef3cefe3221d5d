"""A text file as the model reads it: named, fenced, and cut to a budget with a marker saying so."""

from __future__ import annotations

from dataclasses import dataclass

from bot.files import notes
from bot.files.kinds import fence_for, trim_text
from bot.files.results import Chunk


@dataclass(frozen=True)
class TextChunk:
    chunk: Chunk  # {"type": "text", "text": …}
    cut: bool  # the file's text was trimmed to fit
    kept: int  # characters of the file's text shown
    total: int  # characters of the file's text

    @property
    def length(self) -> int:
        return len(self.chunk["text"])


def text_chunk(name: str, text: str, *, limit: int, keep_tail: bool = False, label: str = "file") -> TextChunk:
    """A text file as the model reads it: a header naming it, its text fenced, a marker when cut to `limit`.

    `limit` bounds the whole chunk's text, unless it is too small even for the header and marker (then the
    chunk shows no text and is longer than `limit`: the caller leaves the file out). Later turns use this to
    send a stored file's text again within that turn's budget.
    """
    head = f"Attached {label} {notes.code(name)}:\n"

    def fenced(body: str) -> str:
        fence = fence_for(body)  # no run of backticks in the file can close it
        return f"{head}{fence}\n{body.rstrip(chr(10))}\n{fence}"

    whole = fenced(text)
    if len(whole) <= limit:
        return TextChunk({"type": "text", "text": whole}, False, len(text), len(text))

    def marker(kept: int) -> str:
        return f"\n[{notes.code(name)} was cut to fit: {kept:,} of {len(text):,} characters shown.]"

    # What the text may take: the limit less the frame around it (the real marker is never longer than this one).
    frame = len(fenced("")) + 2 * (len(fence_for(text)) - 3)
    room = limit - frame - len(marker(len(text)))
    trimmed = trim_text(text, max(room, 0), keep_tail=keep_tail)
    chunk_text = fenced(trimmed.text) + marker(trimmed.kept)
    return TextChunk({"type": "text", "text": chunk_text}, True, trimmed.kept, trimmed.total)
