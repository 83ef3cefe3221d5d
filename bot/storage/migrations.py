"""The schema, as an append-only list of migrations recorded by name in `migrations`.

Never edit or renumber a migration that has shipped: add a new one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiosqlite

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]
MIGRATIONS: list[Migration] = []
migration = MIGRATIONS.append


@migration
async def m001_conversations(db: aiosqlite.Connection) -> None:
    # One row per Slack thread; the persona in force when the thread started stays with it.
    await db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            team_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            system_prompt TEXT NOT NULL,
            persona TEXT,
            params TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (team_id, channel_id, thread_ts)
        )
        """
    )


@migration
async def m002_messages(db: aiosqlite.Connection) -> None:
    # slack_ts is the user's message ts (the dedup key) or the first Slack message of an answer;
    # slack_parts lists every Slack message an answer spans, so a restart can find and mark them.
    await db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text TEXT NOT NULL,
            slack_user TEXT,
            slack_ts TEXT,
            reply_to INTEGER REFERENCES messages(id),
            slack_parts TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            total_tokens INTEGER,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    await db.execute(
        "CREATE UNIQUE INDEX messages_slack_ts ON messages (conversation_id, slack_ts) WHERE slack_ts IS NOT NULL"
    )
    await db.execute("CREATE INDEX messages_status ON messages (status)")


@migration
async def m003_channel_personas(db: aiosqlite.Connection) -> None:
    await db.execute(
        """
        CREATE TABLE channel_personas (
            team_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            persona TEXT,
            system_prompt TEXT NOT NULL,
            params TEXT NOT NULL,
            updated_by TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (team_id, channel_id)
        )
        """
    )


@migration
async def m004_messages_by_conversation(db: aiosqlite.Connection) -> None:
    # history() reads one thread's turns; without this it walks every complete message of every thread
    # (messages_slack_ts is partial, so it cannot serve it).
    await db.execute("CREATE INDEX messages_by_conversation ON messages (conversation_id, status)")


@migration
async def m005_message_tokens(db: aiosqlite.Connection) -> None:
    # Tekken's count of the message as the model reads it (speaker label included), counted once when a
    # prompt first comes near its budget; NULL until then, and again whenever the text changes.
    await db.execute("ALTER TABLE messages ADD COLUMN tokens INTEGER")


@migration
async def m006_feedback_and_home(db: aiosqlite.Connection) -> None:
    # One rating per person and answer: a second click replaces the first. Restarting an answer deletes
    # its ratings, since they rated a text that is gone.
    await db.execute(
        """
        CREATE TABLE feedback (
            answer_id INTEGER NOT NULL REFERENCES messages(id),
            user_id TEXT NOT NULL,
            value TEXT NOT NULL CHECK (value IN ('good', 'bad')),
            at REAL NOT NULL,
            PRIMARY KEY (answer_id, user_id)
        )
        """
    )
    # The Home tab: the conversations a person wrote in, and a thread's last activity, without walking
    # every message of the workspace.
    await db.execute("CREATE INDEX messages_by_user ON messages (slack_user, conversation_id)")
    await db.execute("CREATE INDEX messages_activity ON messages (conversation_id, updated_at)")


async def migrate(db: aiosqlite.Connection) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; returns the names applied."""
    await db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    await db.commit()
    async with db.execute("SELECT name FROM migrations") as cursor:
        done = {row[0] for row in await cursor.fetchall()}
    applied = []
    for step in MIGRATIONS:
        if step.__name__ in done:
            continue
        await db.execute("BEGIN")
        try:
            await step(db)
            await db.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, strftime('%s','now'))", (step.__name__,)
            )
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        applied.append(step.__name__)
    return applied
