"""Cutting a long answer into Slack messages: nothing lost, nothing repeated, code fences kept whole.

Cuts happen in the model's Markdown, at the best boundary before the limit (a paragraph, else a line, else a
word), and each part is rendered on its own: a part that ends inside a code block closes it and the next
part reopens it. A natively streamed message also ends before Slack expires it (`stream_rollover`), and
its appends carry whole words (`stream_append_end`), so a stream that ends early never splits a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.mrkdwn import to_mrkdwn

# Where a chat.update message is cut. Each carries its text in a section block (its controls need blocks, and
# Slack then shows the blocks, not `text`), and a section's text must be under 3,001 characters: one section
# per message, cut a little below that (the cursor that follows the text while it is written fits too).
# One section, not several: each section renders its mrkdwn alone, so a code block split across two would
# show broken, and a message is cut at a good boundary anyway. (chat.update's own msg_too_long comes at about
# 4,000.) Notes are part of the text that is cut, so they fit too.
MESSAGE_LIMIT = 2_900
# A natively streamed message holds at most 12,000 characters of Markdown in all. Past the soft limit it
# ends at the next good boundary; it never grows past the hard one (room for a closing code fence).
STREAM_SOFT_LIMIT = 9_000
STREAM_HARD_LIMIT = 11_500
# Slack ends a stream about five minutes after it starts, whatever is appended. A message streamed this long
# ends and the answer continues in a new one, a minute before that.
STREAM_MAX_AGE = 240.0

_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Rendered:
    text: str
    ends_in_code: bool


def render_part(raw: str, *, opens_in_code: bool = False) -> Rendered:
    text, ends_in_code = to_mrkdwn(raw, in_code=opens_in_code)
    if opens_in_code:
        text = "```\n" + text
    if ends_in_code:
        text += "\n```"
    return Rendered(text, ends_in_code)


def split_head(raw: str, *, limit: int = MESSAGE_LIMIT, opens_in_code: bool = False) -> tuple[str, str] | None:
    """(head, rest) when `raw` renders longer than `limit`, else None; the head renders within the limit."""
    if len(render_part(raw, opens_in_code=opens_in_code).text) <= limit:
        return None
    window = min(len(raw), limit)
    while window > 1:
        cut, resume = _best_cut(raw, window)
        head = raw[:cut]
        if head and len(render_part(head, opens_in_code=opens_in_code).text) <= limit:
            return head, raw[resume:]
        # Escaping or fence markers made it longer than it looks: try a shorter window.
        window = max(1, min(window - 1, cut - 1) if cut > 1 else window // 2)
    return raw[:1], raw[1:]


def split_all(raw: str, *, limit: int = MESSAGE_LIMIT) -> list[Rendered]:
    """Every part of a finished answer, rendered."""
    parts: list[Rendered] = []
    in_code = False
    while True:
        split = split_head(raw, limit=limit, opens_in_code=in_code)
        if split is None:
            parts.append(render_part(raw, opens_in_code=in_code))
            return parts
        head, raw = split
        part = render_part(head, opens_in_code=in_code)
        parts.append(part)
        in_code = part.ends_in_code


def stream_cut(
    raw: str, *, sent: int, soft: int = STREAM_SOFT_LIMIT, hard: int = STREAM_HARD_LIMIT
) -> tuple[int, int] | None:
    """Where a streamed message showing `raw` must end: (end, resume), or None while it may still grow.

    A stream is append-only, so the cut is never before `sent` (what Slack already has). Past `soft` it
    ends at the best boundary it can; text without any boundary streams on up to `hard`, and is cut there.
    """
    if len(raw) <= soft:
        return None
    floor = max(sent, soft // 2)
    for sep in ("\n\n", "\n", " "):
        at = raw.rfind(sep, floor, soft + 1)
        if at >= max(sent, 1):
            return at, at + len(sep)
    if len(raw) <= hard:
        return None  # no boundary yet: wait for one, up to the hard limit
    for sep in ("\n\n", "\n", " "):
        at = raw.rfind(sep, max(sent, 1), hard + 1)
        if at > 0:
            return at, at + len(sep)
    end = max(sent, hard)
    return end, end


def stream_rollover(raw: str, *, sent: int, age: float, max_age: float = STREAM_MAX_AGE) -> tuple[int, int] | None:
    """Where a streamed message `age` seconds old ends before Slack expires it: (end, resume), or None.

    Past `max_age` it ends with what it already shows when that ends between words (appends carry whole
    words: `stream_append_end`), else at the end of the word it stops in. None while it is young, while it
    shows nothing, or has nothing more to show (a new message would continue nothing), or no word has ended.
    """
    if age < max_age or sent <= 0 or not raw[sent:].strip():
        return None
    if raw[sent - 1].isspace():
        return sent, sent
    space = _SPACE.search(raw, sent)
    return (space.start(), space.end()) if space else None


def stream_append_end(markdown: str, *, sent: int, final: bool, limit: int) -> int:
    """How far the next append to a streamed message reaches in `markdown`, of which Slack has `sent` characters.

    Appends end between words, so a stream that ends early (expired, refused, rolled over) shows whole words
    and the message that continues it starts with one. The final text goes out to its end; a run of `limit`
    characters without a space goes out as it is. `sent` (nothing to append) while the rest is one open word.
    """
    end = min(len(markdown), sent + limit)
    if final and end == len(markdown):
        return end
    space = max(markdown.rfind(c, sent, end) for c in " \n\t")
    if space >= sent:
        return space + 1
    return end if final or end - sent >= limit else sent


def ends_in_code(raw: str, *, opens_in_code: bool = False) -> bool:
    """Whether Markdown that starts inside (or outside) a code fence ends inside one."""
    return render_part(raw, opens_in_code=opens_in_code).ends_in_code


def _best_cut(raw: str, window: int) -> tuple[int, int]:
    """Where to end the head and where the rest starts, looking only at `raw[:window + 1]`."""
    # Only text inside the window decides, so a cut chosen while streaming stays the right one later.
    floor = window // 2
    for sep in ("\n\n", "\n", " "):
        at = raw.rfind(sep, floor, window + 1)
        if at > 0:
            return at, at + len(sep)
    return window, window
