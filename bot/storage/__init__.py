"""Storage: the only package that talks to a database."""

from bot.storage.base import (
    Conversation,
    NewMessage,
    Persona,
    Status,
    Store,
    StoredMessage,
    ThreadKey,
    Turn,
    UnfinishedAnswer,
    Usage,
)
from bot.storage.sqlite import SQLiteStore

__all__ = [
    "Conversation",
    "NewMessage",
    "Persona",
    "SQLiteStore",
    "Status",
    "Store",
    "StoredMessage",
    "ThreadKey",
    "Turn",
    "UnfinishedAnswer",
    "Usage",
]
