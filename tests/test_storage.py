from __future__ import annotations

from pathlib import Path

import aiosqlite

from bot.core.params import ModelParams
from bot.core.personas import Persona
from bot.storage import NewMessage, SQLiteStore, Status, ThreadKey, Usage
from bot.storage.migrations import MIGRATIONS

KEY = ThreadKey("T1", "C1", "1700000100.000001")
PERSONA = Persona("be nice", ModelParams(temperature=0.2), "kind")


async def test_schema_after_migrating_a_fresh_database(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "a.db"))
    await store.close()
    async with aiosqlite.connect(tmp_path / "a.db") as db:

        async def columns(table: str) -> list[str]:
            async with db.execute(f"PRAGMA table_info({table})") as cursor:
                return [row[1] for row in await cursor.fetchall()]

        assert await columns("conversations") == [
            "id",
            "team_id",
            "channel_id",
            "thread_ts",
            "system_prompt",
            "persona",
            "params",
            "created_at",
        ]
        assert await columns("messages") == [
            "id",
            "conversation_id",
            "role",
            "text",
            "slack_user",
            "slack_ts",
            "reply_to",
            "slack_parts",
            "status",
            "finish_reason",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "created_at",
            "updated_at",
        ]
        assert await columns("channel_personas") == [
            "team_id",
            "channel_id",
            "persona",
            "system_prompt",
            "params",
            "updated_by",
            "updated_at",
        ]
        async with db.execute("SELECT name FROM migrations ORDER BY name") as cursor:
            assert [r[0] for r in await cursor.fetchall()] == [m.__name__ for m in MIGRATIONS]
        async with db.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone())[0] == "wal"  # type: ignore[index]


async def test_migrations_run_once(tmp_path: Path) -> None:
    for _ in range(2):
        store = await SQLiteStore.open(str(tmp_path / "b.db"))
        await store.close()
    names = [m.__name__ for m in MIGRATIONS]
    assert len(names) == len(set(names))


async def test_claims_are_once_only_and_history_is_ordered(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "c.db"))
    first = await store.claim_turn(KEY, PERSONA, NewMessage("user", "q1", "1700000100.000001", "U1"))
    assert first is not None and first.created_conversation
    assert await store.claim_turn(KEY, PERSONA, NewMessage("user", "q1", "1700000100.000001", "U1")) is None
    second = await store.claim_turn(KEY, Persona("other"), NewMessage("user", "q2", "1700000102.000001", "U2"))
    assert second is not None and not second.created_conversation
    assert second.conversation.persona == PERSONA  # the thread keeps the persona it began with
    # The first answer was posted after the second question arrived; it still follows its own question.
    await store.save_answer(
        first.answer_id,
        text="a1",
        status=Status.COMPLETE,
        slack_parts=["1700000103.000001"],
        finish_reason="stop",
        usage=Usage(3, 2, 5),
    )
    history = await store.history(first.conversation.id, "1700000102.000001")
    assert [(m.role, m.text) for m in history] == [("user", "q1"), ("assistant", "a1"), ("user", "q2")]
    assert [(m.role, m.text) for m in await store.history(first.conversation.id, "1700000100.000001")] == [
        ("user", "q1"),
        ("assistant", "a1"),
    ]
    # Pending answers are not history, and they are what a restart must mark.
    unfinished = await store.unfinished_answers()
    assert [u.answer_id for u in unfinished] == [second.answer_id]
    await store.close()


async def test_edits_deletions_and_backfill(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "d.db"))
    turn = await store.claim_turn(KEY, PERSONA, NewMessage("user", "q", "1700000100.000001", "U1"))
    assert turn is not None
    assert (
        await store.add_context(
            turn.conversation.id,
            [
                NewMessage("user", "early", "1700000099.000001", "U2"),
                NewMessage("user", "dup", "1700000100.000001", "U1"),
            ],
        )
        == 1
    )
    assert await store.edit_message("T1", "C1", "1700000099.000001", "early, edited")
    assert not await store.edit_message("T1", "C2", "1700000099.000001", "wrong channel")
    history = await store.history(turn.conversation.id, "1700000100.000001")
    assert [m.text for m in history] == ["early, edited", "q"]
    assert await store.delete_message("T1", "C1", "1700000099.000001")
    assert [m.text for m in await store.history(turn.conversation.id, "1700000100.000001")] == ["q"]
    await store.close()


async def test_channel_personas_round_trip(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "e.db"))
    assert await store.get_channel_persona("T1", "C1") is None
    await store.set_channel_persona("T1", "C1", PERSONA, "U1")
    assert await store.get_channel_persona("T1", "C1") == PERSONA
    await store.set_channel_persona("T1", "C1", None, "U1")
    assert await store.get_channel_persona("T1", "C1") is None
    await store.close()
