"""Usage and cost, admin notices, retention and data requests (issue 13), on both backends.

Query plans and migrating an SQLite file of the previous schema are SQLite's own; two replicas claiming one
notice and a lost connection are PostgreSQL's.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiosqlite
import psycopg
import pytest

from bot.storage import NewMessage, SQLiteStore, Status, ThreadKey, Turn, queries
from bot.storage import admin as admin_module
from bot.storage import migrations as migrations_module
from bot.storage import postgres as postgres_module
from bot.storage import sql_store as sql_store_module
from bot.storage import sqlite as sqlite_module
from bot.storage.base import UsageRecord, UsageRow
from bot.storage.migrations import MIGRATIONS, migrate
from bot.storage.postgres import PostgresStore
from tests.storage.conftest import AnyStore, query
from tests.storage.test_answers_and_home import KIND, Clock, answered

RECORD = UsageRecord(
    team_id="T1",
    channel_id="C1",
    user_id="U1",
    answer_id=None,
    model="mistral-small-latest",
    persona=None,
    prompt_tokens=100,
    completion_tokens=10,
    cached_tokens=0,
    cost=1.0,
    at=1000.0,
)
NOTHING = UsageRow(None, 0, 0, 0, 0, 0.0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    # Every module of the store that reads time.
    for module in (sqlite_module, postgres_module, sql_store_module, admin_module):
        monkeypatch.setattr(module, "time", fake)
    return fake


async def record(store: AnyStore, **fields: object) -> None:
    await store.record_usage(replace(RECORD, **fields))  # type: ignore[arg-type]


# usage ----------------------------------------------------------------------------------------------------


async def test_usage_is_summed_per_key_most_expensive_first(store: AnyStore) -> None:
    await record(store, user_id="U1", channel_id="C1", model="small", persona=None, cost=1.0, cached_tokens=5)
    await record(store, user_id="U1", channel_id="C2", model="large", persona="kind", cost=3.0, prompt_tokens=7)
    await record(store, user_id="U2", channel_id="C1", model="small", persona="kind", cost=0.5, completion_tokens=1)
    await record(store, user_id=None, channel_id="C3", model="small", persona=None, cost=0.25)

    assert await store.usage_by("user", since=0) == [
        UsageRow("U1", 2, 107, 20, 5, 4.0),
        UsageRow("U2", 1, 100, 1, 0, 0.5),
        UsageRow(None, 1, 100, 10, 0, 0.25),  # forgotten people, summed together
    ]
    assert await store.usage_by("channel", since=0) == [
        UsageRow("C2", 1, 7, 10, 0, 3.0),
        UsageRow("C1", 2, 200, 11, 5, 1.5),
        UsageRow("C3", 1, 100, 10, 0, 0.25),
    ]
    assert await store.usage_by("model", since=0) == [
        UsageRow("large", 1, 7, 10, 0, 3.0),
        UsageRow("small", 3, 300, 21, 5, 1.75),
    ]
    assert await store.usage_by("persona", since=0) == [
        UsageRow("kind", 2, 107, 11, 0, 3.5),
        UsageRow(None, 2, 200, 20, 5, 1.25),  # the default persona
    ]
    [top] = await store.usage_by("user", since=0, limit=1)
    assert top.key == "U1" and top.tokens == 127
    assert await store.usage_by("user", since=0, limit=0) == []


async def test_equal_costs_are_ordered_by_tokens_then_by_key_byte_by_byte(store: AnyStore) -> None:
    for user in ("a", "B", None, "c"):
        await record(store, user_id=user, cost=2.0)
    await record(store, user_id="few", cost=2.0, prompt_tokens=1)
    await record(store, user_id="many", cost=2.0, prompt_tokens=1000)
    rows = await store.usage_by("user", since=0)
    assert [r.key for r in rows] == ["many", "B", "a", "c", None, "few"]


async def test_usage_is_filtered_by_workspace_person_channel_and_time(store: AnyStore) -> None:
    await record(store, team_id="T1", user_id="U1", channel_id="C1", at=1000.0, cost=1.0)
    await record(store, team_id="T1", user_id="U1", channel_id="C2", at=2000.0, cost=2.0)
    await record(store, team_id="T1", user_id="U2", channel_id="C1", at=2000.0, cost=4.0)
    await record(store, team_id="T2", user_id="U1", channel_id="C1", at=2000.0, cost=8.0)

    async def cost(**filters: object) -> float:
        total = await store.usage_total(**filters)  # type: ignore[arg-type]
        return total.cost

    assert await cost(since=0) == 15.0  # every workspace
    assert await cost(since=0, team_id="T1") == 7.0
    assert await cost(since=0, team_id="T1", user_id="U1") == 3.0
    assert await cost(since=0, user_id="U1") == 11.0
    assert await cost(since=0, team_id="T1", channel_id="C1") == 5.0
    assert await cost(since=0, team_id="T1", user_id="U1", channel_id="C1") == 1.0
    assert await cost(since=2000.0, team_id="T1") == 6.0  # `since` itself counts
    assert await cost(since=2000.5, team_id="T1") == 0.0
    assert await store.usage_total(since=0, team_id="T1", user_id="U1") == UsageRow(None, 2, 200, 20, 0, 3.0)
    assert await store.usage_by("channel", since=0, team_id="T1", user_id="U1") == [
        UsageRow("C2", 1, 100, 10, 0, 2.0),
        UsageRow("C1", 1, 100, 10, 0, 1.0),
    ]
    assert [r.key for r in await store.usage_by("user", since=1500.0, channel_id="C1")] == ["U1", "U2"]


async def test_totals_of_nothing_are_zeros(store: AnyStore) -> None:
    assert await store.usage_total(since=0) == NOTHING
    assert await store.usage_total(since=0, team_id="T1", user_id="U1", channel_id="C1") == NOTHING
    assert await store.usage_by("model", since=0) == []
    await record(store, at=10.0)
    assert await store.usage_total(since=11.0) == NOTHING
    assert NOTHING.tokens == 0


async def test_usage_keeps_what_it_was_given(store: AnyStore) -> None:
    await record(store, answer_id=42, persona="kind", cached_tokens=60, cost=0.000123)
    [row] = await query(
        store,
        "SELECT team_id, channel_id, user_id, answer_id, model, persona, prompt_tokens, completion_tokens, "
        "cached_tokens, cost, at FROM usage",
    )
    assert row == ("T1", "C1", "U1", 42, "mistral-small-latest", "kind", 100, 10, 60, 0.000123, 1000.0)


@pytest.mark.parametrize(
    "by,limit", [("team", None), ("user_id", None), ("user; DROP TABLE usage", None), ("user", -1)]
)
async def test_unknown_groupings_and_negative_limits_are_refused(store: AnyStore, by: str, limit: int | None) -> None:
    with pytest.raises(ValueError):
        await store.usage_by(by, since=0, limit=limit)  # type: ignore[arg-type]


# notices -----------------------------------------------------------------------------------------------------


async def test_a_notice_is_claimed_once_per_workspace_kind_and_period(store: AnyStore) -> None:
    assert await store.claim_notice("T1", "budget-80", "2026-11")
    assert not await store.claim_notice("T1", "budget-80", "2026-11")
    assert await store.claim_notice("T1", "budget-100", "2026-11")
    assert await store.claim_notice("T1", "budget-80", "2026-12")
    assert await store.claim_notice("T2", "budget-80", "2026-11")
    assert not await store.claim_notice("T2", "budget-80", "2026-11")


async def test_replicas_claiming_one_notice_at_once_get_it_once(database_url: str) -> None:
    a = await PostgresStore.open(database_url, pool_size=4)
    b = await PostgresStore.open(database_url, pool_size=4)
    try:
        for period in ("2026-10", "2026-11", "2026-12"):
            claims = await asyncio.gather(*(s.claim_notice("T1", "budget-80", period) for s in (a, b) * 4))
            assert claims.count(True) == 1, claims
    finally:
        await a.close()
        await b.close()


# retention ---------------------------------------------------------------------------------------------------


async def ids(store: AnyStore, table: str = "messages") -> set[int]:
    return {r[0] for r in await query(store, f"SELECT id FROM {table}")}


async def claimed(store: AnyStore, key: ThreadKey, ts: str, user: str = "U1") -> Turn:
    turn = await store.claim_turn(key, KIND, NewMessage("user", f"q {ts}", ts, user))
    assert turn is not None
    return turn


async def test_retention_deletes_old_finished_messages_and_keeps_threads_and_usage(
    store: AnyStore, clock: Clock
) -> None:
    key, other = ThreadKey("T1", "C1", "1.000001"), ThreadKey("T2", "C9", "1.000001")
    old = await answered(store, key, "1.000001", "U1")
    await store.record_feedback(old.answer_id, "U2", "good")
    pending = await claimed(store, key, "2.000001")  # answers still being written stay, with their questions
    streaming = await claimed(store, other, "1.000001")
    await store.save_answer(streaming.answer_id, text="so far", status=Status.STREAMING, slack_parts=["1.9"])
    rewritten = await answered(store, key, "3.000001")  # its answer is written again later
    edited = await answered(store, key, "4.000001")  # its question is edited later
    failed = await answered(store, key, "5.000001", status=Status.FAILED)
    await store.add_context(old.conversation.id, [NewMessage("user", "early", "0.500001", "U3")])
    await store.delete_message("T1", "C1", "0.500001")
    await record(store, answer_id=old.answer_id, at=1000.0)

    clock.now = 3000.0
    await store.save_answer(rewritten.answer_id, text="again", status=Status.COMPLETE, slack_parts=["3.9"])
    await store.edit_message("T1", "C1", "4.000001", "q, edited")
    new = await answered(store, key, "6.000001", "U1")
    await store.record_feedback(new.answer_id, "U2", "bad")
    before = await ids(store)

    gone = {old.user_message_id, old.answer_id, edited.answer_id, failed.user_message_id, failed.answer_id}
    context = before - {t.user_message_id for t in (old, pending, streaming, rewritten, edited, failed, new)}
    context -= {t.answer_id for t in (old, pending, streaming, rewritten, edited, failed, new)}
    assert len(context) == 1
    assert await store.forget_before(2000.0) == len(gone) + 1
    assert await ids(store) == before - gone - context
    assert await query(store, "SELECT answer_id, user_id FROM feedback") == [(new.answer_id, "U2")]
    assert len(await ids(store, "conversations")) == 2
    assert len(await ids(store, "usage")) == 1
    assert await store.forget_before(2000.0) == 0

    # The thread is still known: a follow-up is answered in it, and its history is what was kept.
    follow_up = await claimed(store, key, "7.000001")
    assert not follow_up.created_conversation and follow_up.conversation.id == old.conversation.id
    history = await store.history(old.conversation.id, "7.000001")
    assert [m.text for m in history] == ["q 2.000001", "q", "again", "q, edited", "q", "a", "q 7.000001"]
    assert {a.answer_id for a in await store.unfinished_answers()} == {
        pending.answer_id,
        streaming.answer_id,
        follow_up.answer_id,
    }
    ref = await store.answer_ref(pending.answer_id)
    assert ref is not None and ref.user_ts == "2.000001"  # its question stayed, so it can still be taken over


async def test_retention_keeps_an_unfinished_answers_old_question_until_the_answer_finishes(
    store: AnyStore, clock: Clock
) -> None:
    turn = await claimed(store, ThreadKey("T1", "C1", "1.000001"), "1.000001")
    clock.now = 5000.0
    assert await store.forget_before(4000.0) == 0
    await store.save_answer(turn.answer_id, text="late", status=Status.COMPLETE, slack_parts=["1.9"])
    assert await store.forget_before(4000.0) == 0  # the answer is new now, and it keeps its question
    assert await store.forget_before(6000.0) == 2
    assert await ids(store) == set()


# data requests -----------------------------------------------------------------------------------------------


async def test_forgetting_a_person_deletes_their_questions_the_answers_and_the_ratings(store: AnyStore) -> None:
    a, b, c = ThreadKey("T1", "C1", "1.000001"), ThreadKey("T1", "C2", "1.000001"), ThreadKey("T2", "C1", "1.000001")
    q1 = await answered(store, a, "1.000001", "U1")
    q2 = await answered(store, a, "2.000001", "U2")
    q3 = await claimed(store, b, "1.000001", "U1")  # its answer is being written: it goes too
    q4 = await answered(store, c, "1.000001", "U1")
    await store.add_context(q1.conversation.id, [NewMessage("user", "early", "0.500001", "U1")])
    assert await store.record_feedback(q1.answer_id, "U2", "good")  # on the person's answer
    assert await store.record_feedback(q2.answer_id, "U1", "bad")  # the person's own rating
    assert await store.record_feedback(q2.answer_id, "U3", "good")
    assert await store.record_feedback(q4.answer_id, "U1", "good")
    await record(store, team_id="T1", user_id="U1", cost=1.0)
    await record(store, team_id="T1", user_id="U1", cost=2.0)
    await record(store, team_id="T1", user_id="U2", cost=4.0)
    await record(store, team_id="T2", user_id="U1", cost=8.0)
    before = await ids(store)

    assert await store.forget_user("U1", team_id="T1") == 5  # two questions, their answers, the early message
    assert await ids(store) == {q2.user_message_id, q2.answer_id, q4.user_message_id, q4.answer_id}
    assert len(before) == 9
    assert sorted(await query(store, "SELECT answer_id, user_id FROM feedback")) == [
        (q2.answer_id, "U3"),
        (q4.answer_id, "U1"),  # another workspace's
    ]
    assert await store.usage_by("user", since=0, team_id="T1") == [
        UsageRow("U2", 1, 100, 10, 0, 4.0),
        UsageRow(None, 2, 200, 20, 0, 3.0),  # the figures stay, without the person
    ]
    assert await store.usage_total(since=0, team_id="T2", user_id="U1") == UsageRow(None, 1, 100, 10, 0, 8.0)
    assert len(await ids(store, "conversations")) == 3
    assert [m.text for m in await store.history(q2.conversation.id, "9.000001")] == ["q", "a"]
    ref = await store.answer_ref(q2.answer_id)
    assert ref is not None and ref.latest and ref.asker == "U2"
    assert await store.recent_conversations("T1", "U1") == []

    assert await store.forget_user("U1") == 2  # every workspace
    assert await ids(store) == {q2.user_message_id, q2.answer_id}
    assert await query(store, "SELECT answer_id, user_id FROM feedback") == [(q2.answer_id, "U3")]
    assert await query(store, "SELECT count(*) FROM usage WHERE user_id = 'U1'") == [(0,)]
    assert (await store.usage_total(since=0)).cost == 15.0
    assert await store.forget_user("U1") == 0
    assert await store.forget_user("U9", team_id="T1") == 0
    assert await store.take_lapsed() == []  # the answer being written is gone, not left for a take-over
    assert q3.answer_id not in await ids(store)


async def test_forgetting_a_channel_deletes_its_threads_and_persona_and_keeps_usage(store: AnyStore) -> None:
    c1, c1b = ThreadKey("T1", "C1", "1.000001"), ThreadKey("T1", "C1", "2.000001")
    c2, elsewhere = ThreadKey("T1", "C2", "1.000001"), ThreadKey("T2", "C1", "1.000001")
    first = await answered(store, c1, "1.000001", "U1")
    await answered(store, c1, "1.500001", "U2")
    await claimed(store, c1b, "2.000001", "U1")
    kept = [await answered(store, c2, "1.000001", "U1"), await answered(store, elsewhere, "1.000001", "U1")]
    for turn in (first, *kept):
        assert await store.record_feedback(turn.answer_id, "U3", "good")
    for team in ("T1", "T2"):
        await store.set_channel_persona(team, "C1", KIND, "U1")
    await store.set_channel_persona("T1", "C2", KIND, "U1")
    await record(store, team_id="T1", channel_id="C1", cost=1.0)

    assert await store.forget_channel("C1", team_id="T1") == 6
    assert await ids(store) == {m for t in kept for m in (t.user_message_id, t.answer_id)}
    assert await ids(store, "conversations") == {t.conversation.id for t in kept}
    assert await query(store, "SELECT answer_id FROM feedback ORDER BY answer_id") == [(t.answer_id,) for t in kept]
    assert await store.get_channel_persona("T1", "C1") is None
    assert await store.get_channel_persona("T1", "C2") == KIND
    assert await store.get_channel_persona("T2", "C1") == KIND
    assert await store.usage_by("channel", since=0) == [UsageRow("C1", 1, 100, 10, 0, 1.0)]
    assert [u.channel_id for u in await store.channels_in_use("T1")] == ["C2"]

    again = await claimed(store, c1, "3.000001")  # the channel starts afresh
    assert again.created_conversation
    assert await store.forget_channel("C1") == 4  # every workspace: the new question and answer, and T2's turn
    assert await ids(store) == {kept[0].user_message_id, kept[0].answer_id}
    assert await store.get_channel_persona("T2", "C1") is None
    assert await store.forget_channel("C1") == 0


async def test_large_requests_are_deleted_in_batches(store: AnyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_module, "ID_BATCH", 2)
    for k in range(5):
        await answered(store, ThreadKey("T1", "C1", f"{k}.000001"), f"{k}.000001", "U1")
        await answered(store, ThreadKey("T1", "C2", f"{k}.000001"), f"{k}.000001", "U2")
    assert await store.forget_user("U1") == 10
    assert await store.forget_channel("C2") == 10
    assert await ids(store) == set()
    assert len(await ids(store, "conversations")) == 5  # U1's threads in C1 stay known


async def test_a_request_that_fails_halfway_deletes_nothing(store: AnyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    turn = await answered(store, ThreadKey("T1", "C1", "1.000001"), "1.000001", "U1")
    assert await store.record_feedback(turn.answer_id, "U2", "good")
    before = await ids(store)
    monkeypatch.setattr(admin_module, "DELETE_CONVERSATIONS", "DELETE FROM no_such_table WHERE id IN ({ids})")
    with pytest.raises(Exception, match="no_such_table"):
        await store.forget_channel("C1")
    assert await ids(store) == before
    assert await store.feedback_of(turn.answer_id) == {"U2": "good"}
    monkeypatch.undo()
    assert await store.forget_channel("C1") == 2  # and the store goes on working


async def test_a_forget_after_the_server_dropped_the_connections_runs_on_fresh_ones(
    postgres_store: PostgresStore, database_url: str
) -> None:
    await answered(postgres_store, ThreadKey("T1", "C1", "1.000001"), "1.000001", "U1")
    pool = postgres_store.pool
    async with pool.connection() as one, pool.connection() as two:
        pids = [one.info.backend_pid, two.info.backend_pid]
    with psycopg.connect(database_url, autocommit=True) as admin:  # as a server restart would
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert await postgres_store.forget_user("U1") == 2


# plans and migrations (SQLite) --------------------------------------------------------------------------------

TABLES = {"messages", "conversations", "feedback", "usage", "a", "c", "m"}


@pytest.mark.parametrize(
    "sql,args,uses",  # `uses`: an index some step searches
    [
        (queries.RETENTION_FEEDBACK, (1.0,), "messages_retention"),
        (queries.RETENTION_MESSAGES, (1.0, 1.0), "messages_retention"),
        (queries.RETENTION_MESSAGES, (1.0, 1.0), "messages_reply_to"),
        (queries.PERSONS_QUESTIONS.format(team="", lock=""), ("U1",), "messages_by_user"),
        (
            queries.PERSONS_QUESTIONS.format(team=queries.TEAM_OF_MESSAGE, lock=""),
            ("U1", "T1"),
            "messages_by_user",
        ),
        (queries.ANSWERS_TO.format(ids="?,?", lock=""), (1, 2), "messages_reply_to"),
        (queries.PERSONS_FEEDBACK.format(team=""), ("U1",), "feedback_by_user"),
        (
            queries.PERSONS_FEEDBACK.format(team=queries.TEAM_OF_FEEDBACK),
            ("U1", "T1"),
            "feedback_by_user",
        ),
        (
            queries.ANONYMISE_USAGE.format(team=queries.IN_TEAM),
            ("U1", "T1"),
            "usage_by_user",
        ),
        (
            queries.CHANNELS_CONVERSATIONS.format(team=queries.IN_TEAM, lock=""),
            ("C1", "T1"),
            "sqlite_autoindex_conversations_1",
        ),
        (
            queries.FEEDBACK_IN_CONVERSATIONS.format(ids="?,?"),
            (1, 2),
            "messages_",  # messages_by_conversation or messages_activity: both lead with the conversation
        ),
        (
            queries.DELETE_CONVERSATIONS_MESSAGES.format(ids="?,?"),
            (1, 2),
            "messages_",
        ),
        # Quotas read these before every answer.
        (
            *queries.usage_query(None, since=1.0, team_id="T1", user_id="U1", channel_id=None),
            "usage_by_user",
        ),
        (
            *queries.usage_query(None, since=1.0, team_id="T1", user_id=None, channel_id=None),
            "usage_by_team",
        ),
        (
            *queries.usage_query(None, since=1.0, team_id="T1", user_id=None, channel_id="C1"),
            "usage_by_team",
        ),
        (
            *queries.usage_query("user", since=1.0, team_id="T1", user_id=None, channel_id=None, limit=10),
            "usage_by_",  # either: a person in a workspace, or the workspace
        ),
    ],
)
async def test_the_usage_and_forget_queries_search_indexes_and_scan_no_table(
    sqlite_store: SQLiteStore, sql: str, args: tuple[object, ...], uses: str
) -> None:
    plan = [row[3] for row in await sqlite_store._rows("EXPLAIN QUERY PLAN " + sql, args)]
    scanned = [step for step in plan if step.startswith("SCAN") and step.split()[1] in TABLES]
    assert not scanned, plan
    assert any(step.startswith("SEARCH") and f" INDEX {uses}" in step for step in plan), plan


async def test_postgresql_reads_old_messages_and_replies_through_the_partial_indexes(database_url: str) -> None:
    store = await PostgresStore.open(database_url, pool_size=1)
    await store.close()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("SET enable_seqscan = off")  # empty tables: only whether the index can serve matters
        cursor = await conn.execute("EXPLAIN " + postgres_module.pg(queries.RETENTION_MESSAGES), (1.0, 1.0))
        plan = "\n".join(r[0] for r in await cursor.fetchall())
        assert "messages_retention" in plan, plan
        # The foreign key's own check, planned once for any id (a generic plan), as PostgreSQL runs it.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE replies (bigint) AS SELECT 1 FROM messages WHERE reply_to = $1")
        cursor = await conn.execute("EXPLAIN EXECUTE replies(1)")
        plan = "\n".join(r[0] for r in await cursor.fetchall())
        assert "messages_reply_to" in plan, plan


async def test_the_usage_migration_applies_to_a_database_of_the_previous_schema(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [m.__name__ for m in MIGRATIONS]
    new = names.index("m010_usage")
    with monkeypatch.context() as patched:
        patched.setattr(migrations_module, "MIGRATIONS", MIGRATIONS[:new])
        store = await SQLiteStore.open(str(path))
        try:
            await answered(store, ThreadKey("T1", "C1", "1.000001"), "1.000001", "U1")
        finally:
            await store.close()
    async with aiosqlite.connect(path, isolation_level=None) as db:
        assert await migrate(db) == names[new:]
    store = await SQLiteStore.open(str(path))
    try:
        await record(store)
        assert (await store.usage_total(since=0, team_id="T1")).answers == 1
        assert await store.forget_user("U1") == 2
    finally:
        await store.close()
