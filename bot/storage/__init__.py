"""Storage: the only package that talks to a database."""

from bot.storage.base import (
    FEEDBACK_VALUES,
    UNFINISHED,
    AnswerRef,
    ChannelUse,
    Conversation,
    ConversationSummary,
    FeedbackCount,
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
    "FEEDBACK_VALUES",
    "UNFINISHED",
    "AnswerRef",
    "ChannelUse",
    "Conversation",
    "ConversationSummary",
    "FeedbackCount",
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
