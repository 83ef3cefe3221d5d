"""Storage: the only package that talks to a database. `open_store` picks the backend DATABASE_URL names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.storage.base import (
    FEEDBACK_VALUES,
    LEASE_SECONDS,
    UNFINISHED,
    AnswerRef,
    ChannelUse,
    Conversation,
    ConversationSummary,
    FeedbackCount,
    NewMessage,
    Persona,
    SchemaTooNew,
    Status,
    Store,
    StoredMessage,
    StoreError,
    StoreUnavailable,
    ThreadKey,
    Turn,
    UnfinishedAnswer,
    Usage,
    UsageBy,
    UsageRecord,
    UsageRow,
)
from bot.storage.sqlite import SQLiteStore

if TYPE_CHECKING:
    from bot.config import Settings


async def open_store(settings: Settings) -> Store:
    """PostgreSQL when DATABASE_URL names it, else SQLite at its path; migrated and ready.

    Raises `StoreError` (one line, no secrets) when the database cannot be used.
    """
    if settings.database_url is not None:
        # Imported here: a single process on SQLite never loads the PostgreSQL driver (start-up time, memory).
        from bot.storage.postgres import PostgresStore

        return await PostgresStore.open(
            settings.database_url, pool_size=settings.database_pool_size, lease_seconds=settings.answer_lease
        )
    return await SQLiteStore.open(settings.database_path, lease_seconds=settings.answer_lease)


__all__ = [
    "FEEDBACK_VALUES",
    "LEASE_SECONDS",
    "UNFINISHED",
    "AnswerRef",
    "ChannelUse",
    "Conversation",
    "ConversationSummary",
    "FeedbackCount",
    "NewMessage",
    "Persona",
    "SQLiteStore",
    "SchemaTooNew",
    "Status",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredMessage",
    "ThreadKey",
    "Turn",
    "UnfinishedAnswer",
    "Usage",
    "UsageBy",
    "UsageRecord",
    "UsageRow",
    "open_store",
]
