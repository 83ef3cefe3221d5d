"""Slack's message markup → plain text a model reads well.

`<@U123>` becomes `@Ada`, `<#C1|general>` becomes `#general`, links keep both label and address, and the
HTML entities Slack escapes (`&amp; &lt; &gt;`) are undone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

_TOKEN = re.compile(r"<([^<>]+)>")
_USER_ID = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def user_ids(text: str) -> set[str]:
    """Users mentioned in `text`, whose names are worth looking up."""
    return set(_USER_ID.findall(text))


def strip_leading_mention(text: str, bot_user_id: str) -> str:
    """Drop the `<@BOT>` that addresses the bot at the start of a message."""
    return re.sub(rf"^\s*<@{re.escape(bot_user_id)}(\|[^>]*)?>[\s,:]*", "", text).strip()


def readable(text: str, *, names: Mapping[str, str], bot_user_id: str, bot_name: str = "assistant") -> str:
    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            uid = target[1:]
            if uid == bot_user_id:
                return f"@{bot_name}"
            return f"@{names.get(uid) or label or uid}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!subteam^"):
            return label or "@group"
        if target.startswith("!"):
            return f"@{target[1:].split('^')[0]}"
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        if label and label != target:
            return f"{label} ({target})"
        return target

    return html.unescape(_TOKEN.sub(replace, text))
