from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import aiosqlite
import pytest

from bot.core.params import ModelParams
from bot.core.personas import Persona
from bot.storage import NewMessage, SQLiteStore, Status, ThreadKey, Turn, Usage
from bot.storage.migrations import MIGRATIONS
from bot.storage.queries import HISTORY_QUERY
from bot.storage.sqlite import CACHE_KIB
from tests.storage.conftest import AnyStore, query

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
            "tokens",
            "lease_owner",
            "lease_until",
            "files",
        ]
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'") as c:
            assert sorted(r[0] for r in await c.fetchall() if not r[0].startswith("sqlite_")) == [
                "messages_activity",
                "messages_by_conversation",
                "messages_by_user",
                "messages_reply_to",
                "messages_retention",
                "messages_slack_ts",
                "messages_status",
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
        assert await columns("feedback") == ["answer_id", "user_id", "value", "at"]
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") as cursor:
            assert [r[0] for r in await cursor.fetchall()] == [
                "channel_personas",
                "conversations",
                "feedback",
                "messages",
                "migrations",
                "notices",
                "slack_budget",  # PostgreSQL's shared Slack budget: created everywhere, used by PostgreSQL only
                "usage",
            ]
        async with db.execute("SELECT name FROM migrations ORDER BY name") as cursor:
            assert [r[0] for r in await cursor.fetchall()] == [m.__name__ for m in MIGRATIONS]
        async with db.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone())[0] == "wal"  # type: ignore[index]


async def test_the_page_cache_is_bounded_whatever_the_databases_size(sqlite_store: SQLiteStore) -> None:
    assert await sqlite_store._rows("PRAGMA cache_size", ()) == [(-CACHE_KIB,)]  # KiB, not SQLite's 2 MB


async def test_migrations_run_once(tmp_path: Path) -> None:
    for _ in range(2):
        store = await SQLiteStore.open(str(tmp_path / "b.db"))
        await store.close()
    names = [m.__name__ for m in MIGRATIONS]
    assert len(names) == len(set(names))


async def test_history_reads_one_thread_through_indexes_not_a_scan_of_every_message(
    sqlite_store: SQLiteStore,
) -> None:
    plan_rows = await sqlite_store._rows(
        "EXPLAIN QUERY PLAN " + HISTORY_QUERY, (1, "1700000100.000001", Status.COMPLETE, Status.PARTIAL)
    )
    plan = [row[3] for row in plan_rows]
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert any(step.startswith("SEARCH m USING INDEX messages_by_conversation") for step in plan), plan
    assert any(step.startswith("SEARCH q USING INTEGER PRIMARY KEY") for step in plan), plan


async def test_claims_are_once_only_and_history_is_ordered(store: AnyStore) -> None:
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


async def test_edits_deletions_and_backfill(store: AnyStore) -> None:
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


async def test_channel_personas_round_trip(store: AnyStore) -> None:
    assert await store.get_channel_persona("T1", "C1") is None
    await store.set_channel_persona("T1", "C1", PERSONA, "U1")
    assert await store.get_channel_persona("T1", "C1") == PERSONA
    await store.set_channel_persona("T1", "C1", None, "U1")
    assert await store.get_channel_persona("T1", "C1") is None


async def first_turn(store: AnyStore) -> Turn:
    """The thread's first question, claimed: the turn every test below starts from."""
    turn = await store.claim_turn(KEY, PERSONA, NewMessage("user", "q1", "1700000100.000001", "U1"))
    assert turn is not None
    return turn


async def test_a_progress_save_writes_one_page_where_a_full_save_writes_its_indexes_too(
    sqlite_store: SQLiteStore, path: Path
) -> None:
    turn = await first_turn(sqlite_store)
    await sqlite_store.save_answer(turn.answer_id, text="so", status=Status.STREAMING, slack_parts=["1.2"])
    [(page_size,)] = await query(sqlite_store, "PRAGMA page_size")

    def frames() -> int:  # pages written to the WAL so far (nothing here checkpoints it)
        return (Path(f"{path}-wal").stat().st_size - 32) // (page_size + 24)

    before = frames()
    await sqlite_store.save_progress(turn.answer_id, text="so far", slack_parts=["1.2"])
    progress = frames() - before
    before = frames()
    await sqlite_store.save_answer(turn.answer_id, text="so far and", status=Status.STREAMING, slack_parts=["1.2"])
    full = frames() - before
    assert progress == 1 and full > 2


async def test_token_counts_are_kept_until_the_text_changes(store: AnyStore) -> None:
    turn = await first_turn(store)
    await store.save_answer(turn.answer_id, text="a1", status=Status.COMPLETE, slack_parts=["1700000101.000001"])
    await store.add_context(turn.conversation.id, [NewMessage("user", "early", "1700000099.000001", "U2")])
    read = await store.history(turn.conversation.id, "1700000100.000001")
    assert [(m.text, m.tokens) for m in read] == [("early", None), ("q1", None), ("a1", None)]
    await store.record_tokens([(m, 10 + i) for i, m in enumerate(read)])
    assert [m.tokens for m in await store.history(turn.conversation.id, "1700000100.000001")] == [10, 11, 12]

    # An edit, or an answer written further, makes the count stale: it is forgotten. Not so an edit event
    # that leaves the text as it was.
    assert await store.edit_message("T1", "C1", "1700000100.000001", "q1")
    assert await store.edit_message("T1", "C1", "1700000099.000001", "early, edited")
    await store.save_answer(turn.answer_id, text="a1, longer", status=Status.COMPLETE, slack_parts=["1700000101.1"])
    again = await store.history(turn.conversation.id, "1700000100.000001")
    assert [(m.text, m.tokens) for m in again] == [("early, edited", None), ("q1", 11), ("a1, longer", None)]
    # A count made from the text before an edit is not recorded over the new text.
    await store.record_tokens([(read[0], 99), (again[2], 7)])
    assert [m.tokens for m in await store.history(turn.conversation.id, "1700000100.000001")] == [None, 11, 7]


# cancellation ---------------------------------------------------------------------------------------------


class Gate:
    """Holds aiosqlite's worker thread just before the first statement that starts with `prefix`.

    Installed as SQLite's trace callback, so a test can cancel a write while that statement is queued or
    running, which is where an `await` on aiosqlite gives the task up.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, sql: str) -> None:
        if not self.reached.is_set() and sql.lstrip().upper().startswith(self.prefix):
            self.reached.set()
            self.release.wait(10)


async def committed(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """What another connection sees: only committed data."""
    async with aiosqlite.connect(path) as db, db.execute(sql, args) as cursor:
        return [tuple(r) for r in await cursor.fetchall()]


@pytest.mark.parametrize("point", ["lock", "BEGIN", "INSERT", "COMMIT"])
async def test_a_transaction_cancelled_at_any_point_leaves_the_store_usable(
    sqlite_store: SQLiteStore, path: Path, point: str
) -> None:
    store = sqlite_store
    turn = await first_turn(store)
    gate = Gate("INSERT" if point == "lock" else point)
    await store._db.set_trace_callback(gate)
    stamps = iter(["1700000090.000001", "1700000091.000001"])

    def save(text: str) -> asyncio.Task[int]:
        # Backfilled context: BEGIN, INSERT, COMMIT, as every multi-statement write of the store.
        return asyncio.create_task(store.add_context(turn.conversation.id, [NewMessage("user", text, next(stamps))]))

    holder = save("held") if point == "lock" else None  # another write holds the lock and waits at UPDATE
    task = save("cancelled")
    await asyncio.to_thread(gate.reached.wait, 5)
    assert gate.reached.is_set()
    # Cancel twice (as a `wait_for` timeout and a shutdown would): the clean-up must not be cut short.
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    gate.release.set()
    await asyncio.gather(task, return_exceptions=True)
    if holder is not None:
        await holder
    await store._db.set_trace_callback(None)

    # A cancelled write is all or nothing: only one cancelled during COMMIT may have landed.
    expected = {"lock": [("held",)], "BEGIN": [], "INSERT": [], "COMMIT": [("cancelled",)]}[point]
    rows = await committed(path, "SELECT text FROM messages WHERE text IN ('held', 'cancelled')")
    assert rows == expected
    # Later claims and writes go through.
    later = await asyncio.wait_for(
        store.claim_turn(KEY, PERSONA, NewMessage("user", "q2", "1700000102.000001", "U1")), 5
    )
    assert later is not None
    await store.save_answer(turn.answer_id, text="a1", status=Status.COMPLETE, slack_parts=["1700000101.000001"])
    history = await store.history(turn.conversation.id, "1700000102.000001")
    assert [m.text for m in history if m.text not in ("held", "cancelled")] == ["q1", "a1", "q2"]


def locked(path: Path) -> sqlite3.Connection:
    """Another process's write transaction on the file: it holds the database's write lock until rolled back."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_single_statement_runs_on_the_loops_thread_without_a_trip_to_sqlites_thread(
    sqlite_store: SQLiteStore, path: Path
) -> None:
    store = sqlite_store
    turn = await first_turn(store)
    statements: list[str] = []  # what aiosqlite's connection runs
    await store._db.set_trace_callback(statements.append)
    await store.save_answer(turn.answer_id, text="a1", status=Status.STREAMING, slack_parts=["1700000101.1"])
    await store.set_channel_persona("T1", "C1", PERSONA, "U1")
    await store._db.set_trace_callback(None)
    assert statements == []
    # Committed at once, for every connection to see.
    assert await committed(path, "SELECT text FROM messages WHERE id = ?", turn.answer_id) == [("a1",)]
    assert await store.get_channel_persona("T1", "C1") == PERSONA


async def test_a_write_that_finds_the_database_locked_waits_in_sqlites_thread_not_on_the_event_loop(
    sqlite_store: SQLiteStore, path: Path
) -> None:
    store = sqlite_store
    turn = await first_turn(store)
    other = locked(path)
    try:
        task = asyncio.create_task(
            store.save_answer(turn.answer_id, text="a1", status=Status.STREAMING, slack_parts=["1700000101.1"])
        )
        ticks = 0
        for _ in range(20):  # the loop goes on meanwhile: the write waits for the lock in aiosqlite's thread
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not task.done()
    finally:
        other.rollback()
        other.close()
    assert await asyncio.wait_for(task, 5) is True
    assert await committed(path, "SELECT text FROM messages WHERE id = ?", turn.answer_id) == [("a1",)]


async def test_a_single_statement_write_cancelled_while_it_runs_leaves_the_store_usable(
    sqlite_store: SQLiteStore, path: Path
) -> None:
    store = sqlite_store
    turn = await first_turn(store)
    gate = Gate("UPDATE")
    await store._db.set_trace_callback(gate)
    other = locked(path)  # so the statement goes to aiosqlite's thread, where a cancelled await does not stop it
    task = asyncio.create_task(
        store.save_answer(turn.answer_id, text="cancelled", status=Status.STREAMING, slack_parts=["1700000101.1"])
    )
    await asyncio.to_thread(gate.reached.wait, 5)
    assert gate.reached.is_set()
    task.cancel()
    other.rollback()
    other.close()
    gate.release.set()
    await asyncio.gather(task, return_exceptions=True)
    await store._db.set_trace_callback(None)
    # The statement ran to its end by itself (autocommit): the row is whole, and no transaction is left open.
    rows = await committed(path, "SELECT text FROM messages WHERE id = ?", turn.answer_id)
    assert rows in ([("",)], [("cancelled",)])
    assert await asyncio.wait_for(
        store.claim_turn(KEY, PERSONA, NewMessage("user", "q2", "1700000102.000001", "U1")), 5
    )
    assert await committed(path, "SELECT count(*) FROM messages") == [(4,)]


async def test_claims_cancelled_after_any_number_of_loop_iterations_are_all_or_nothing(
    sqlite_store: SQLiteStore, path: Path
) -> None:
    store = sqlite_store
    outcomes = set()
    for k in range(60):
        ts = f"1700000{k:03d}.000001"
        task = asyncio.create_task(store.claim_turn(KEY, PERSONA, NewMessage("user", f"q{k}", ts, "U1")))
        for _ in range(k):
            await asyncio.sleep(0)
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        landed = bool(await committed(path, "SELECT 1 FROM messages WHERE slack_ts = ?", ts))
        outcomes.add((isinstance(results[0], asyncio.CancelledError), landed))
        # Slack redelivers: the message is claimed exactly once, whatever happened to the first try.
        again = await asyncio.wait_for(store.claim_turn(KEY, PERSONA, NewMessage("user", f"q{k}", ts, "U1")), 5)
        assert (again is None) == landed
    # Every question has exactly one answer row; nothing is left half-written.
    assert await committed(
        path,
        "SELECT count(*) FROM messages q WHERE q.role = 'user' AND "
        "(SELECT count(*) FROM messages a WHERE a.reply_to = q.id) != 1",
    ) == [(0,)]
    assert await committed(path, "SELECT count(*) FROM messages WHERE role = 'user'") == [(60,)]
    assert (True, False) in outcomes  # some cancellations did land before the claim committed


# stored personas --------------------------------------------------------------------------------------------


async def test_stored_settings_that_todays_rules_refuse_still_load(sqlite_store: SQLiteStore, path: Path) -> None:
    store = sqlite_store
    # Validation happens when a persona is set or PERSONAS_FILE is read; a rule tightened later must not
    # break threads (or channels) that started under the old one.
    old = Persona("be bold", ModelParams(temperature=1.9, stop=("END",)), "bold")
    with pytest.raises(ValueError):
        old.params.validate()
    turn = await store.claim_turn(KEY, old, NewMessage("user", "q", "1700000100.000001", "U1"))
    assert turn is not None
    await store.set_channel_persona("T1", "C1", old, "U1")
    async with aiosqlite.connect(path) as db:  # and a setting this version no longer knows
        await db.execute("""UPDATE conversations SET params = '{"temperature": 1.9, "stop": ["END"], "gone": 1}'""")
        await db.commit()
    conversation = await store.get_conversation(KEY)
    assert conversation is not None and conversation.persona == old
    assert await store.get_channel_persona("T1", "C1") == old
