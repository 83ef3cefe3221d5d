"""Leases on answers in flight: who writes an answer, and taking over the answers of a process that died.

Each case runs on both backends; a second store on the same database plays the other process (another replica
on PostgreSQL; on SQLite, the next start of the bot, since an SQLite file serves one process at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import NewMessage, SQLiteStore, Status, ThreadKey, Turn
from bot.storage.postgres import PostgresStore
from tests.storage.conftest import AnyStore, query
from tests.storage.test_answers_and_home import KIND

KEY = ThreadKey("T1", "C1", "1700000100.000001")


@pytest.fixture
async def other(request: pytest.FixtureRequest, store: AnyStore, path: Path) -> AsyncIterator[AnyStore]:
    """Another process's store on the same database."""
    if isinstance(store, PostgresStore):
        opened: AnyStore = await PostgresStore.open(request.getfixturevalue("database_url"), pool_size=2)
    else:
        opened = await SQLiteStore.open(str(path))
    yield opened
    await opened.close()


async def claim(store: AnyStore, ts: str, key: ThreadKey = KEY) -> Turn:
    turn = await store.claim_turn(key, KIND, NewMessage("user", f"q {ts}", ts, "U1"))
    assert turn is not None
    return turn


async def lapse(store: AnyStore, answer_id: int) -> None:
    """The lease runs out, as it does some seconds after its process died."""
    await store._write("UPDATE messages SET lease_until = ? WHERE id = ?", (1.0, answer_id))


async def test_a_claimed_answer_is_leased_to_its_process_until_it_finishes(store: AnyStore, other: AnyStore) -> None:
    turn = await claim(store, "1700000100.000001")
    [(owner, until)] = await query(store, "SELECT lease_owner, lease_until FROM messages WHERE id = ?", turn.answer_id)
    assert owner == store.owner != other.owner and until > 0
    assert await store.renew_leases([turn.answer_id, 999]) == {turn.answer_id}
    assert await other.renew_leases([turn.answer_id]) == set()  # not its lease
    assert await store.save_answer(turn.answer_id, text="done", status=Status.COMPLETE, slack_parts=["1.2"])
    assert await store.renew_leases([turn.answer_id]) == set()  # finished: nothing left to hold
    assert await other.take_lapsed() == []


async def test_a_lapsed_answer_is_taken_over_with_what_it_had_and_its_writer_is_fenced_off(
    store: AnyStore, other: AnyStore
) -> None:
    turn = await claim(store, "1700000100.000001")
    assert await store.save_answer(turn.answer_id, text="so far", status=Status.STREAMING, slack_parts=["1.2"])
    if isinstance(store, PostgresStore):
        assert await other.take_lapsed() == []  # the lease is still running: its process may be alive
        await lapse(store, turn.answer_id)
    [taken] = await other.take_lapsed()
    assert (taken.answer_id, taken.text, taken.slack_parts, taken.user_ts) == (
        turn.answer_id,
        "so far",
        ["1.2"],
        turn.user_ts,
    )
    assert taken.conversation == turn.conversation and taken.asker == "U1" and taken.asked_at > 0
    assert await other.take_lapsed() == []  # taken once

    # The first process (if it was only slow) can write no more, and no longer holds the lease.
    assert not await store.save_answer(turn.answer_id, text="so far, and mo", status=Status.STREAMING, slack_parts=[])
    assert await store.renew_leases([turn.answer_id]) == set()
    assert await other.save_answer(turn.answer_id, text="so far, and more", status=Status.COMPLETE, slack_parts=["1.2"])
    ref = await store.answer_ref(turn.answer_id)
    assert ref is not None and ref.text == "so far, and more" and ref.status is Status.COMPLETE


async def test_a_released_lease_is_taken_at_once_and_a_live_one_never(store: AnyStore, other: AnyStore) -> None:
    turn = await claim(store, "1700000100.000001")
    assert await store.take_lapsed() == []  # its own answer, its lease running: it is writing it
    fresh = await claim(store, "1700000100.000002")
    await store.release_leases([fresh.answer_id])
    taken = [ref.answer_id for ref in await other.take_lapsed()]
    if isinstance(store, PostgresStore):
        assert taken == [fresh.answer_id]  # the other's lease still runs: its process may be alive
    else:
        assert taken == [turn.answer_id, fresh.answer_id]  # SQLite: one process at a time, the other is gone


async def test_a_process_takes_its_own_answer_back_once_its_lease_lapsed(store: AnyStore) -> None:
    """An answer this process claimed but lost track of (its claim timed out after the commit, say) is not left
    pending for ever: its lease lapses like any other."""
    turn = await claim(store, "1700000100.000001")
    await lapse(store, turn.answer_id)
    assert [ref.answer_id for ref in await store.take_lapsed()] == [turn.answer_id]
    assert await store.renew_leases([turn.answer_id]) == {turn.answer_id}


async def test_a_turn_waits_only_for_unfinished_answers_to_earlier_questions(store: AnyStore) -> None:
    first = await claim(store, "1700000100.000001")
    second = await claim(store, "1700000100.000002")
    conversation = first.conversation.id
    assert not await store.earlier_unfinished(conversation, first.user_ts)
    assert await store.earlier_unfinished(conversation, second.user_ts)
    await store.save_answer(first.answer_id, text="a", status=Status.COMPLETE, slack_parts=["1.2"])
    assert not await store.earlier_unfinished(conversation, second.user_ts)
    elsewhere = await claim(store, "1700000100.000003", ThreadKey("T1", "C2", "1700000100.000003"))
    assert not await store.earlier_unfinished(elsewhere.conversation.id, elsewhere.user_ts)  # other threads: no


async def test_replicas_sweeping_at_once_take_each_lapsed_answer_once(
    postgres_store: PostgresStore, database_url: str
) -> None:
    turns = [await claim(postgres_store, f"1700000100.00000{i}") for i in range(1, 7)]
    await postgres_store._write("UPDATE messages SET lease_until = 1 WHERE role = 'assistant'", ())
    replicas = [await PostgresStore.open(database_url, pool_size=2) for _ in range(3)]
    try:
        taken = await asyncio.gather(*(r.take_lapsed(limit=3) for r in replicas))
    finally:
        for replica in replicas:
            await replica.close()
    ids = sorted(ref.answer_id for refs in taken for ref in refs)
    assert ids == sorted(t.answer_id for t in turns)
    owners = await query(postgres_store, "SELECT DISTINCT lease_owner FROM messages WHERE role = 'assistant'")
    assert {o for (o,) in owners} == {r.owner for r, refs in zip(replicas, taken, strict=True) if refs}


async def test_a_progress_save_grows_the_text_renews_the_lease_and_is_fenced_off_after_a_takeover(
    store: AnyStore, other: AnyStore
) -> None:
    turn = await claim(store, "1700000100.000001")
    assert await store.save_answer(turn.answer_id, text="so", status=Status.STREAMING, slack_parts=["1.2"])
    sql = "SELECT status, slack_ts, updated_at, lease_until FROM messages WHERE id = ?"
    [(_, _, updated_at, until)] = await query(store, sql, turn.answer_id)
    await asyncio.sleep(0.01)
    assert await store.save_progress(turn.answer_id, text="so far", slack_parts=["1.2", "1.3"])
    ref = await store.answer_ref(turn.answer_id)
    assert ref is not None and (ref.text, ref.slack_parts, ref.status) == ("so far", ["1.2", "1.3"], Status.STREAMING)
    [(status, slack_ts, updated_at_now, until_now)] = await query(store, sql, turn.answer_id)
    # The status, the first message and the moment of the last change of status stay as they were saved.
    assert (status, slack_ts, updated_at_now) == ("streaming", "1.2", updated_at) and until_now > until

    if isinstance(store, PostgresStore):
        await lapse(store, turn.answer_id)
    [taken] = await other.take_lapsed()
    assert taken.text == "so far"
    assert not await store.save_progress(turn.answer_id, text="so far, and mo", slack_parts=["1.2", "1.3"])
    ref = await store.answer_ref(turn.answer_id)
    assert ref is not None and ref.text == "so far"
