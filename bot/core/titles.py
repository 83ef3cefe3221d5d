"""Short plain-text labels from what people wrote: DM thread titles and the Home tab's list of conversations.

A question as Slack delivers it carries markup (`<@U1>`, `<https://x|label>`, `&amp;`, `*bold*`); a title is
one line of plain text, cut at a word so it reads as a sentence that goes on.
"""

from __future__ import annotations

import html
import re

TITLE_CHARS = 60
FALLBACK_TITLE = "New conversation"
ELLIPSIS = "…"

_TOKEN = re.compile(r"<([^<>]*)>")
# Formatting marks at the edge of a word (`*bold*`, `_it_`, `~gone~`), not inside one (`snake_case`).
_MARKS = re.compile(r"(?<!\w)[*_~]+|[*_~]+(?!\w)")
_QUOTE = re.compile(r"^\s*(?:>\s*)+")


def _token(match: re.Match[str]) -> str:
    target, _, label = match.group(1).partition("|")
    if target.startswith(("@", "!")):
        return ""  # people, groups, @here: noise in a title
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("mailto:"):
        return label or target[len("mailto:") :]
    return label or target


def plain_line(text: str) -> str:
    """The first line of `text` that says something, without Slack markup, its whitespace collapsed."""
    for line in text.splitlines():
        plain = html.unescape(_TOKEN.sub(_token, line))
        plain = _QUOTE.sub("", plain).replace("`", "")
        plain = " ".join(_MARKS.sub("", plain).split())
        if plain:
            return plain
    return ""


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: cut at a word, with "…" standing for the rest."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS) + 1]  # one more, to see whether the cut falls between words
    cut = head.rfind(" ")
    head = head[:cut] if cut > 0 else head[:-1]  # a single long word is cut where it must be
    return head.rstrip(" ,;:.-–—") + ELLIPSIS


def thread_title(question: str) -> str:
    """A DM thread's title in the Messages tab, from the question that started it."""
    return shorten(plain_line(question), TITLE_CHARS) or FALLBACK_TITLE
