"""What only PostgreSQL has to show: several stores (replicas) on one database, its migrations, its errors."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from bot.core.params import ModelParams
from bot.core.personas import Persona
from bot.storage import NewMessage, SchemaTooNew, StoreUnavailable, ThreadKey
from bot.storage.migrations import MIGRATIONS
from bot.storage.postgres import PostgresStore, migrate

KEY = ThreadKey("T1", "C1", "1700000100.000001")
PERSONA = Persona("be nice", ModelParams(temperature=0.2), "kind")


async def test_two_replicas_claiming_one_message_at_once_get_one_turn(database_url: str) -> None:
    a = await PostgresStore.open(database_url, pool_size=4)
    b = await PostgresStore.open(database_url, pool_size=4)
    try:
        for k in range(10):  # new threads and, from the second message on, an existing one
            key = KEY if k else ThreadKey("T1", "C1", "1700000099.000001")
            message = NewMessage("user", f"q{k}", f"1700000{100 + k}.000001", "U1")
            turns = await asyncio.gather(*(s.claim_turn(key, PERSONA, message) for s in (a, b, a, b)))
            won = [t for t in turns if t is not None]
            assert len(won) == 1, turns
        rows = await a._rows("SELECT count(*) FROM messages WHERE role = 'assistant'")
        assert rows == [(10,)]
    finally:
        await a.close()
        await b.close()


async def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    async def connect_and_migrate() -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await migrate(conn)

    results = await asyncio.gather(*(connect_and_migrate() for _ in range(3)))
    names = [m.__name__ for m in MIGRATIONS]
    assert sorted(results, key=len) == [[], [], names]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT name FROM migrations ORDER BY name")
        assert [r[0] for r in await cursor.fetchall()] == names


async def test_schema_types(database_url: str) -> None:
    store = await PostgresStore.open(database_url, pool_size=1)
    await store.close()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT table_name, column_name, data_type, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name IN ('id', 'conversation_id', 'reply_to', "
            "'answer_id', 'created_at', 'at', 'slack_ts', 'thread_ts', 'tokens') ORDER BY 1, 2"
        )
        assert await cursor.fetchall() == [
            ("conversations", "created_at", "double precision", None),
            ("conversations", "id", "bigint", None),
            ("conversations", "thread_ts", "text", "C"),
            ("feedback", "answer_id", "bigint", None),
            ("feedback", "at", "double precision", None),
            ("messages", "conversation_id", "bigint", None),
            ("messages", "created_at", "double precision", None),
            ("messages", "id", "bigint", None),
            ("messages", "reply_to", "bigint", None),
            ("messages", "slack_ts", "text", "C"),
            ("messages", "tokens", "integer", None),
            ("notices", "at", "double precision", None),
            ("usage", "answer_id", "bigint", None),
            ("usage", "at", "double precision", None),
            ("usage", "id", "bigint", None),
        ]


async def test_a_schema_newer_than_the_code_is_refused_in_one_line(database_url: str) -> None:
    store = await PostgresStore.open(database_url, pool_size=1)
    await store.close()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO migrations VALUES ('m999_from_the_future', 0)")
    with pytest.raises(SchemaTooNew) as info:
        await PostgresStore.open(database_url, pool_size=1)
    message = str(info.value)
    assert message.startswith("the database schema is newer than this version of the bot: ")
    assert "m999_from_the_future" in message and "\n" not in message


async def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as info:
        await PostgresStore.open("postgresql://postgres:hunter2@127.0.0.1:1/test", pool_size=1)
    message = str(info.value)
    assert message.startswith("DATABASE_URL: cannot use the PostgreSQL database at 127.0.0.1:1/test (")
    assert "\n" not in message and "hunter2" not in message


async def test_claims_cancelled_at_any_point_are_all_or_nothing_and_return_their_connection(
    postgres_store: PostgresStore,
) -> None:
    for k in range(40):
        ts = f"1700000{k:03d}.000001"
        task = asyncio.create_task(postgres_store.claim_turn(KEY, PERSONA, NewMessage("user", f"q{k}", ts, "U1")))
        for _ in range(k):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        landed = bool(await postgres_store._rows("SELECT 1 FROM messages WHERE slack_ts = ?", (ts,)))
        again = await asyncio.wait_for(
            postgres_store.claim_turn(KEY, PERSONA, NewMessage("user", f"q{k}", ts, "U1")), 5
        )
        assert (again is None) == landed
    assert await postgres_store._rows(
        "SELECT count(*) FROM messages q WHERE q.role = 'user' AND "
        "(SELECT count(*) FROM messages a WHERE a.reply_to = q.id) != 1"
    ) == [(0,)]
    stats = postgres_store._pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"]  # every connection went back
