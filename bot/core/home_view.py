"""The Home tab as Block Kit: what the bot does and how to ask, the person's recent conversations, and the
persona and model of each channel where the bot is used. Data in, a `home` view out; no I/O.

Slack's limits are kept here, where a table test reaches them: at most 100 blocks, section text under 3,000
characters, header text at most 150. Everything people or admins wrote is escaped for mrkdwn (`& < >`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.titles import plain_line, shorten

MAX_BLOCKS = 100
MAX_SECTION_CHARS = 2_900  # Slack's limit is 3,000; a margin for the joins
MAX_HEADER_CHARS = 150
QUESTION_CHARS = 80
NAME_CHARS = 60  # persona and model names: an admin's choice, kept to one line
NO_QUESTION = "(no text)"


@dataclass(frozen=True)
class ThreadLine:
    """One of the person's conversations: where it is, what started it, when it last moved."""

    channel_id: str
    thread_ts: str
    question: str  # as Slack delivered it, markup and all
    last_activity: float  # Unix time


@dataclass(frozen=True)
class ChannelLine:
    channel_id: str
    persona: str  # a persona's name, "custom" or "default"
    model: str
    good: int = 0  # feedback on the answers given there
    bad: int = 0


def escape(text: str) -> str:
    """Text shown as mrkdwn: Slack reads `&`, `<` and `>` as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def thread_link(workspace_url: str | None, channel_id: str, thread_ts: str) -> str:
    """A thread's permalink built without asking Slack (`chat.getPermalink` would cost a call per thread)."""
    if not workspace_url:
        return f"https://slack.com/app_redirect?channel={channel_id}"
    base = workspace_url if workspace_url.endswith("/") else workspace_url + "/"
    return f"{base}archives/{channel_id}/p{thread_ts.replace('.', '')}"


def when(timestamp: float) -> str:
    """A time Slack shows in each reader's own time zone; the fallback is UTC."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def where(channel_id: str) -> str:
    return "in a DM" if channel_id.startswith("D") else f"in <#{channel_id}>"


def how_to_ask(bot_user_id: str) -> str:
    me = f"<@{bot_user_id}>" if bot_user_id else "me"
    return "\n".join(
        [
            f"• *Mention* {me} in a channel: I answer in that message's thread (invite me first with `/invite`).",
            "• *Message me* here in the Messages tab: each message starts a conversation in its thread.",
            "• *`/ask &lt;question&gt;`* in any channel: I post your question there and answer in its thread.",
            "• *Follow up* by replying in the thread: I remember the whole thread, no need to mention me again.",
            "• *`/persona`* shows or changes how I answer in a channel: its system prompt and model.",
            "• *Summarize thread*: open a message's ⋯ menu and choose *Summarize thread*.",
            "• While I write, *Stop* ends the answer; the feedback buttons under an answer say how it went.",
        ]
    )


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": shorten(text, MAX_HEADER_CHARS)}}


def packed(lines: Sequence[str]) -> list[dict[str, Any]]:
    """Lines as few sections as fit Slack's limit (a line too long alone is shortened)."""
    blocks: list[str] = []
    for line in lines:
        line = shorten(line, MAX_SECTION_CHARS)
        if blocks and len(blocks[-1]) + 1 + len(line) <= MAX_SECTION_CHARS:
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
    return [section(text) for text in blocks]


def thread_item(thread: ThreadLine, workspace_url: str | None) -> str:
    question = shorten(plain_line(thread.question), QUESTION_CHARS) or NO_QUESTION
    link = thread_link(workspace_url, thread.channel_id, thread.thread_ts)
    return f"• <{link}|{escape(question)}> {where(thread.channel_id)} · {when(thread.last_activity)}"


def channel_item(channel: ChannelLine) -> str:
    persona = escape(shorten(channel.persona, NAME_CHARS))
    if channel.persona not in ("custom", "default"):
        persona = f"`{persona}`"
    line = f"• <#{channel.channel_id}>: {persona} persona, model `{escape(shorten(channel.model, NAME_CHARS))}`"
    return line + (f" · 👍 {channel.good} 👎 {channel.bad}" if channel.good or channel.bad else "")


def home_view(
    *,
    bot_user_id: str,
    threads: Sequence[ThreadLine],
    channels: Sequence[ChannelLine],
    workspace_url: str | None,
) -> dict[str, Any]:
    """The Home tab for one person. DM channels are left out of the channel list: whose they are is private."""
    blocks: list[dict[str, Any]] = [
        header("Ask Mistral in Slack"),
        section(
            "I answer questions with Mistral's chat models, in Slack threads: the answer streams in as I write "
            "it, and every reply in the thread carries the conversation on."
        ),
        header("How to ask"),
        section(how_to_ask(bot_user_id)),
        {"type": "divider"},
        header("Your recent conversations"),
    ]
    if threads:
        blocks += packed([thread_item(t, workspace_url) for t in threads])
    else:
        blocks.append(section("None yet: mention me in a channel, or write to me in the Messages tab."))
    blocks += [{"type": "divider"}, header("Personas by channel")]
    shared = [c for c in channels if not c.channel_id.startswith("D")]
    if shared:
        blocks += packed([channel_item(c) for c in shared])
    else:
        blocks.append(section("I'm not answering in any channel yet."))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "`/persona` in a channel shows or changes it."}]}
    )
    if len(blocks) > MAX_BLOCKS:  # only a flood of very long lines gets here
        blocks = [*blocks[: MAX_BLOCKS - 1], section("…and more.")]
    return {"type": "home", "blocks": blocks}
