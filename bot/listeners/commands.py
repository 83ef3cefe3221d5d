"""Slash commands: `/ask <question>`, `/persona [show|set|reset|list|use]` and `/usage`."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot.ask import ask_in_background
from bot.conversation import Conversations
from bot.core.personas import PersonaError, describe, parse_persona_command
from bot.listeners.events import identity_of
from bot.storage import StoreUnavailable
from bot.usage import UsageReports

log = logging.getLogger(__name__)

ASK_USAGE = (
    "*Usage:* `/ask <question>`: I post your question in this channel and answer in its thread; reply "
    "there to follow up. Example: `/ask How do I undo the last git commit?`\n"
    "Slash commands cannot carry files: to ask about a screenshot, a log or a PDF, share it in a message that "
    "mentions me (or in our DM)."
)
PERSONA_USAGE = (
    "*Usage:*\n"
    "• `/persona`: show this channel's persona\n"
    "• `/persona set <system prompt>`: give this channel its own system prompt\n"
    "• `/persona list`: the named personas\n"
    "• `/persona use <name>`: apply a named persona\n"
    "• `/persona reset`: back to the default\n"
    "New threads use the persona in force when they start; existing threads keep theirs."
)


USAGE_UNAVAILABLE = "I can't read the usage figures right now (the database is out of reach). Try again soon."


def register(app: AsyncApp, conversations: Conversations) -> None:
    reports = UsageReports.of(conversations)

    @app.command("/ask")
    async def ask(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
        question = (command.get("text") or "").strip()
        if not question or question.lower() == "help":
            await ack(response_type="ephemeral", text=ASK_USAGE)
            return
        await ack()

        async def private_note(text: str) -> None:
            await respond(response_type="ephemeral", text=text, replace_original=False)

        # Posting and answering run in the background: Slack has its acknowledgement within 3 seconds.
        ask_in_background(
            conversations,
            team_id=command.get("team_id") or context.team_id or "",
            channel_id=command["channel_id"],
            user_id=command["user_id"],
            question=question,
            identity=identity_of(context),
            private_note=private_note,
        )

    @app.command("/persona")
    async def persona(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext) -> None:
        # Store reads and writes take milliseconds, so the answer rides on the acknowledgement itself.
        text = await persona_reply(
            conversations,
            team_id=command.get("team_id") or context.team_id or "",
            channel_id=command["channel_id"],
            user_id=command["user_id"],
            text=command.get("text") or "",
        )
        await ack(response_type="ephemeral", text=text)

    @app.command("/usage")
    async def usage_command(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext) -> None:
        # A few indexed sums: well within Slack's 3 seconds, so the figures ride on the acknowledgement.
        try:
            text = await reports.reply(
                team_id=command.get("team_id") or context.team_id or "",
                channel_id=command["channel_id"],
                user_id=command["user_id"],
            )
        except StoreUnavailable as exc:
            log.warning("/usage: %s", exc)
            text = USAGE_UNAVAILABLE
        await ack(response_type="ephemeral", text=text)


async def persona_reply(conversations: Conversations, *, team_id: str, channel_id: str, user_id: str, text: str) -> str:
    personas = conversations.personas
    try:
        cmd = parse_persona_command(text)
        if cmd.verb == "help":
            return PERSONA_USAGE
        if cmd.verb == "show":
            current = await personas.current(team_id, channel_id)
            return describe(current, personas.effective(current))
        if cmd.verb == "list":
            if not personas.catalog.named:
                return "No named personas are defined (an admin can add them to `PERSONAS_FILE`)."
            lines = [f"• `{name}`: {p.system_prompt[:80]}" for name, p in sorted(personas.catalog.named.items())]
            return "*Named personas* (apply one with `/persona use <name>`):\n" + "\n".join(lines)
        if not personas.may_change(user_id):
            return "Sorry, only the bot's admins can change this channel's persona. `/persona` shows it."
        if cmd.verb == "set":
            await personas.set_prompt(team_id, channel_id, cmd.argument, user_id)
            reply = "Done: new threads in this channel use your system prompt."
        elif cmd.verb == "use":
            await personas.use(team_id, channel_id, cmd.argument, user_id)
            reply = f"Done: new threads in this channel use the `{cmd.argument}` persona."
        else:
            await personas.reset(team_id, channel_id, user_id)
            reply = "Done: this channel is back to the default persona."
        log.info("%s changed the persona of %s (%s)", user_id, channel_id, cmd.verb)
        return reply + " Existing threads keep theirs."
    except PersonaError as exc:
        return f"{exc}\n\n{PERSONA_USAGE}"
