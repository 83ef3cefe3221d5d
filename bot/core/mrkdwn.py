"""Markdown as models write it → Slack's mrkdwn.

Conversion is line by line, with the only state (inside a code fence or not) flowing forwards, so the
rendering of a finished line never changes as more text streams in.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x00"
_LINK_MARK = re.compile("\x01(\\d+)\x01")  # where a link was taken out, by its number


def escape(text: str) -> str:
    """Slack treats `& < >` as control characters everywhere, code blocks included."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str, *, in_code: bool = False) -> tuple[str, bool]:
    """Convert `markdown`; returns the mrkdwn and whether it ends inside a code fence."""
    out = []
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            out.append("```")  # Slack shows no language tag
        elif in_code:
            out.append(escape(line))
        else:
            out.append(_convert_line(line))
    return "\n".join(out), in_code


def _convert_line(line: str) -> str:
    if _RULE.match(line):
        return "──────────"
    heading = _HEADING.match(line)
    if heading:
        # A heading is bold as a whole; bold inside it would end the bold early.
        return f"*{_inline(heading.group(1).replace('**', '').replace('__', ''))}*"
    bullet = _BULLET.match(line)
    if bullet:
        indent = len(bullet.group(1).expandtabs(4)) // 2
        return f"{'    ' * indent}{'•◦▪'[min(indent, 2)]} {_inline(bullet.group(2))}"
    if line.startswith(">"):
        return "&gt;" + _inline(line[1:])
    return _inline(line)


def _inline(text: str) -> str:
    # Code spans are taken out first: nothing inside them is formatting.
    parts = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(_format(text[last : match.start()]))
        parts.append(f"`{escape(match.group(2).strip())}`")
        last = match.end()
    parts.append(_format(text[last:]))
    return "".join(parts)


def _format(text: str) -> str:
    # Each pattern needs its marker: a line without it (most of a long answer, re-rendered at every update)
    # skips the pattern's scan.
    links: list[str] = []
    if _BOLD_MARK in text or "\x01" in text:  # the placeholders' own characters, which Slack would not show
        text = text.replace(_BOLD_MARK, "").replace("\x01", "")

    def keep_link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        url = url.replace("|", "%7C").replace(">", "%3E")
        links.append(f"<{url}|{escape(label)}>" if label else f"<{url}>")
        return f"\x01{len(links) - 1}\x01"

    if "](" in text:
        text = _IMAGE_OR_LINK.sub(keep_link, text)
    text = escape(text)
    if "**" in text or "__" in text:
        text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    if "*" in text:
        text = _ITALIC.sub(r"_\1_", text)
    if "~~" in text:
        text = _STRIKE.sub(r"~\1~", text)
    text = text.replace(_BOLD_MARK, "*")
    return _LINK_MARK.sub(lambda m: links[int(m.group(1))], text) if links else text
