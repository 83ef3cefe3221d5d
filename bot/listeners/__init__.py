"""Slack in: thin handlers per surface, each with a `register(app, ...)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.conversation import Conversations
from bot.listeners import actions, commands, events, home, shortcuts


def register_listeners(app: AsyncApp, conversations: Conversations) -> None:
    events.register(app, conversations)
    commands.register(app, conversations)
    home.register(app, conversations)
    actions.register(app, conversations)
    shortcuts.register(app, conversations)
