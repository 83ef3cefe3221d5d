"""Feedback, Retry and Regenerate in place, and the Home tab's look-ups (issue 10), on both backends.

Query plans, cancellation inside aiosqlite and migrating an old SQLite file are SQLite's own.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiosqlite
import pytest

from bot.core.params import ModelParams
from bot.core.personas import Persona
from bot.storage import (
    AnswerRef,
    ChannelUse,
    ConversationSummary,
    FeedbackCount,
    NewMessage,
    SQLiteStore,
    Status,
    ThreadKey,
    Turn,
    Usage,
    queries,
)
from bot.storage import migrations as migrations_module
from bot.storage import postgres as postgres_module
from bot.storage import sql_store as sql_store_module
from bot.storage import sqlite as sqlite_module
from bot.storage.migrations import MIGRATIONS, migrate
from tests.storage.conftest import AnyStore, query
from tests.storage.test_sqlite import Gate, committed

KEY = ThreadKey("T1", "C1", "1700000100.000001")
KIND = Persona("be nice", ModelParams(temperature=0.2), "kind")
DEFAULT = Persona("you are helpful")  # no name: the deployment's default persona


class Clock:
    """Stands in for `time` in the store, so activity times are chosen by the test."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    for module in (sqlite_module, postgres_module, sql_store_module):  # every module of the store that reads time
        monkeypatch.setattr(module, "time", fake)
    return fake


async def answered(
    store: AnyStore,
    key: ThreadKey,
    ts: str,
    user: str = "U1",
    *,
    question: str = "q",
    answer: str = "a",
    persona: Persona = KIND,
    status: Status = Status.COMPLETE,
) -> Turn:
    """A question and its answer, saved as a finished turn saves it."""
    turn = await store.claim_turn(key, persona, NewMessage("user", question, ts, user))
    assert turn is not None
    answer_ts = ts[:-1] + "9"  # the answer's own Slack message, just after the question
    await store.save_answer(
        turn.answer_id,
        text=answer,
        status=status,
        slack_parts=[answer_ts, answer_ts + "1"],
        finish_reason="stop",
        usage=Usage(3, 2, 5),
    )
    return turn


async def answer_row(store: AnyStore, answer_id: int) -> tuple[object, ...]:
    rows = await query(
        store,
        "SELECT text, status, slack_parts, slack_ts, finish_reason, prompt_tokens, completion_tokens, "
        "total_tokens, tokens FROM messages WHERE id = ?",
        answer_id,
    )
    return tuple(rows[0])


# feedback ----------------------------------------------------------------------------------------------------


async def test_a_second_click_replaces_the_first(store: AnyStore, clock: Clock) -> None:
    turn = await answered(store, KEY, "1700000100.000001")
    assert await store.record_feedback(turn.answer_id, "U1", "good")
    assert await store.record_feedback(turn.answer_id, "U2", "bad")
    clock.now = 2000.0
    assert await store.record_feedback(turn.answer_id, "U1", "bad")
    assert await store.feedback_of(turn.answer_id) == {"U1": "bad", "U2": "bad"}
    rows = await query(store, "SELECT user_id, at FROM feedback ORDER BY user_id")
    assert rows == [("U1", 2000.0), ("U2", 1000.0)]


@pytest.mark.parametrize("target,value", [("unknown", "good"), ("question", "good"), ("answer", "meh"), ("answer", "")])
async def test_feedback_on_no_answer_or_of_no_known_value_is_refused(store: AnyStore, target: str, value: str) -> None:
    turn = await answered(store, KEY, "1700000100.000001")
    answer_id = {"unknown": 999, "question": turn.user_message_id, "answer": turn.answer_id}[target]
    assert not await store.record_feedback(answer_id, "U1", value)
    assert await query(store, "SELECT * FROM feedback") == []


async def test_feedback_is_counted_per_channel_and_persona_in_one_workspace(store: AnyStore) -> None:
    kind_c1 = await answered(store, ThreadKey("T1", "C1", "1.000001"), "1.000001")
    default_c1 = await answered(store, ThreadKey("T1", "C1", "2.000001"), "2.000001", persona=DEFAULT)
    kind_c2 = await answered(store, ThreadKey("T1", "C2", "3.000001"), "3.000001")
    other_team = await answered(store, ThreadKey("T2", "C1", "4.000001"), "4.000001")
    second_kind_c1 = await answered(store, ThreadKey("T1", "C1", "5.000001"), "5.000001")
    unrated = await answered(store, ThreadKey("T1", "C3", "6.000001"), "6.000001")
    for answer, user, value in [
        (kind_c1, "U1", "good"),
        (kind_c1, "U2", "good"),
        (second_kind_c1, "U1", "bad"),
        (default_c1, "U1", "bad"),
        (kind_c2, "U3", "good"),
        (other_team, "U1", "good"),
    ]:
        assert await store.record_feedback(answer.answer_id, user, value)
    assert unrated.answer_id
    assert await store.feedback_counts("T1") == [
        FeedbackCount("C1", None, good=0, bad=1),  # the default persona first
        FeedbackCount("C1", "kind", good=2, bad=1),
        FeedbackCount("C2", "kind", good=1, bad=0),
    ]
    assert await store.feedback_counts("T2") == [FeedbackCount("C1", "kind", good=1, bad=0)]
    assert await store.feedback_counts("T9") == []


# what a button points at ------------------------------------------------------------------------------------


async def test_answer_ref_names_the_question_thread_and_whether_it_is_the_latest(store: AnyStore) -> None:
    before = time.time()
    first = await answered(store, KEY, "1700000100.000001", "U1", question="q1", answer="a1")
    ref = await store.answer_ref(first.answer_id)
    assert ref is not None and before <= ref.asked_at <= time.time()
    assert ref == AnswerRef(
        answer_id=first.answer_id,
        conversation=first.conversation,
        user_message_id=first.user_message_id,
        user_ts="1700000100.000001",
        asker="U1",
        status=Status.COMPLETE,
        text="a1",
        slack_parts=["1700000100.000009", "1700000100.0000091"],
        latest=True,
        asked_at=ref.asked_at,
    )
    # Backfilled context is older than the question: the answer stays the latest.
    await store.add_context(first.conversation.id, [NewMessage("user", "early", "1700000099.000001", "U3")])
    assert (await store.answer_ref(first.answer_id)).latest  # type: ignore[union-attr]

    second = await store.claim_turn(KEY, KIND, NewMessage("user", "q2", "1700000102.000001", "U2"))
    assert second is not None
    assert not (await store.answer_ref(first.answer_id)).latest  # type: ignore[union-attr]
    pending = await store.answer_ref(second.answer_id)
    assert pending is not None and pending.latest and pending.status is Status.PENDING and pending.slack_parts == []
    # A later question that was deleted in Slack does not count.
    assert await store.delete_message("T1", "C1", "1700000102.000001")
    assert (await store.answer_ref(first.answer_id)).latest  # type: ignore[union-attr]


async def test_answer_ref_of_no_answer_is_none(store: AnyStore) -> None:
    turn = await answered(store, KEY, "1700000100.000001")
    assert await store.answer_ref(999) is None
    assert await store.answer_ref(turn.user_message_id) is None


async def test_participants_are_those_who_wrote_a_message_still_there(store: AnyStore) -> None:
    turn = await answered(store, KEY, "1700000100.000001", "U1")
    other = await answered(store, ThreadKey("T1", "C1", "1700000200.000001"), "1700000200.000001", "U4")
    conversation_id = turn.conversation.id
    await store.add_context(conversation_id, [NewMessage("user", "early", "1700000099.000001", "U2")])
    await store.add_context(conversation_id, [NewMessage("user", "gone", "1700000099.000002", "U3")])
    assert await store.delete_message("T1", "C1", "1700000099.000002")
    assert await store.is_participant(conversation_id, "U1")
    assert await store.is_participant(conversation_id, "U2")  # wrote before the bot was mentioned
    assert not await store.is_participant(conversation_id, "U3")  # only a deleted message
    assert not await store.is_participant(conversation_id, "U4")  # wrote in another thread
    assert await store.is_participant(other.conversation.id, "U4")


# re-running a turn in place ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.COMPLETE, Status.PARTIAL, Status.FAILED])
async def test_restart_empties_the_answer_keeps_its_slack_messages_and_drops_its_ratings(
    store: AnyStore, status: Status
) -> None:
    turn = await answered(store, KEY, "1700000100.000001", answer="old" if status is not Status.FAILED else "")
    history = await store.history(turn.conversation.id, turn.user_ts)
    await store.record_tokens((m, 7) for m in history)
    assert await store.record_feedback(turn.answer_id, "U1", "bad")
    assert await store.record_feedback(turn.answer_id, "U2", "good")
    other = await answered(store, ThreadKey("T1", "C1", "1700000200.000001"), "1700000200.000001")
    assert await store.record_feedback(other.answer_id, "U1", "good")

    again = await store.restart_answer(turn.answer_id)
    assert again == Turn(
        conversation=turn.conversation,
        user_message_id=turn.user_message_id,
        answer_id=turn.answer_id,
        user_ts=turn.user_ts,
        created_conversation=False,
    )
    assert await answer_row(store, turn.answer_id) == (
        "",
        Status.PENDING,
        '["1700000100.000009", "1700000100.0000091"]',
        "1700000100.000009",
        None,
        None,
        None,
        None,
        None,
    )
    assert await store.feedback_of(turn.answer_id) == {}
    assert await store.feedback_of(other.answer_id) == {"U1": "good"}  # other answers keep theirs
    # It is in progress again: a restart of the bot would mark it interrupted.
    assert [u.answer_id for u in await store.unfinished_answers()] == [turn.answer_id]


@pytest.mark.parametrize("status", [Status.PENDING, Status.STREAMING])
async def test_no_restart_while_the_answer_is_being_written(store: AnyStore, status: Status) -> None:
    turn = await store.claim_turn(KEY, KIND, NewMessage("user", "q", "1700000100.000001", "U1"))
    assert turn is not None
    if status is Status.STREAMING:
        await store.save_answer(turn.answer_id, text="so far", status=status, slack_parts=["1700000100.000009"])
    assert await store.restart_answer(turn.answer_id) is None
    assert (await answer_row(store, turn.answer_id))[:2] == ("" if status is Status.PENDING else "so far", status)


async def test_no_restart_of_an_answer_a_later_question_followed(store: AnyStore) -> None:
    first = await answered(store, KEY, "1700000100.000001", question="q1", answer="a1")
    second = await answered(store, KEY, "1700000102.000001", question="q2", answer="a2")
    assert await store.record_feedback(first.answer_id, "U1", "good")
    assert await store.restart_answer(first.answer_id) is None
    assert (await answer_row(store, first.answer_id))[:2] == ("a1", Status.COMPLETE)
    assert await store.feedback_of(first.answer_id) == {"U1": "good"}
    # Once the later question is deleted in Slack, the first answer is the latest again.
    assert await store.delete_message("T1", "C1", "1700000102.000001")
    assert await store.restart_answer(first.answer_id) is not None
    assert second.answer_id


async def test_no_restart_of_an_answer_whose_question_was_deleted_or_of_no_answer(store: AnyStore) -> None:
    turn = await answered(store, KEY, "1700000100.000001")
    assert await store.restart_answer(999) is None
    assert await store.restart_answer(turn.user_message_id) is None
    assert await store.delete_message("T1", "C1", "1700000100.000001")
    assert await store.restart_answer(turn.answer_id) is None
    assert (await answer_row(store, turn.answer_id))[:2] == ("a", Status.COMPLETE)


async def test_two_clicks_at_once_restart_the_answer_once(store: AnyStore) -> None:
    turn = await answered(store, KEY, "1700000100.000001")
    results = await asyncio.gather(*(store.restart_answer(turn.answer_id) for _ in range(2)))
    won = [r for r in results if r is not None]
    assert len(won) == 1 and won[0].answer_id == turn.answer_id
    # And once the new answer is saved, it may be restarted again.
    await store.save_answer(turn.answer_id, text="new", status=Status.COMPLETE, slack_parts=["1700000100.000009"])
    assert await store.restart_answer(turn.answer_id) is not None


async def test_the_history_keeps_only_the_answer_that_stands(store: AnyStore) -> None:
    earlier = await answered(store, KEY, "1700000100.000001", question="q1", answer="a1")
    turn = await answered(store, KEY, "1700000102.000001", question="q2", answer="old answer")
    conversation_id = turn.conversation.id

    assert await store.restart_answer(turn.answer_id) is not None
    # While the new answer is written, the model reads the question and no answer to it.
    history = await store.history(conversation_id, turn.user_ts)
    assert [(m.role, m.text) for m in history] == [("user", "q1"), ("assistant", "a1"), ("user", "q2")]

    await store.save_answer(turn.answer_id, text="so", status=Status.STREAMING, slack_parts=["1700000102.000009"])
    assert [m.text for m in await store.history(conversation_id, turn.user_ts)] == ["q1", "a1", "q2"]
    await store.save_answer(
        turn.answer_id, text="new answer", status=Status.COMPLETE, slack_parts=["1700000102.000009"]
    )
    later = await store.claim_turn(KEY, KIND, NewMessage("user", "q3", "1700000104.000001", "U1"))
    assert later is not None
    texts = [m.text for m in await store.history(conversation_id, later.user_ts)]
    assert texts == ["q1", "a1", "q2", "new answer", "q3"]
    assert "old answer" not in texts and texts.count("new answer") == 1
    assert earlier.answer_id != turn.answer_id


@pytest.mark.parametrize("point", ["UPDATE", "DELETE", "COMMIT"])
async def test_a_restart_cancelled_at_any_point_is_all_or_nothing(
    sqlite_store: AnyStore, path: Path, point: str
) -> None:
    store = sqlite_store
    turn = await answered(store, KEY, "1700000100.000001", answer="old")
    assert await store.record_feedback(turn.answer_id, "U1", "good")
    gate = Gate(point)
    await store._db.set_trace_callback(gate)
    task = asyncio.create_task(store.restart_answer(turn.answer_id))
    await asyncio.to_thread(gate.reached.wait, 5)
    assert gate.reached.is_set()
    task.cancel()
    gate.release.set()
    await asyncio.gather(task, return_exceptions=True)
    await store._db.set_trace_callback(None)

    text = await committed(path, "SELECT text, status FROM messages WHERE id = ?", turn.answer_id)
    ratings = await committed(path, "SELECT count(*) FROM feedback")
    if point == "COMMIT" and text == [("", "pending")]:
        assert ratings == [(0,)]  # it landed whole
    else:
        assert (text, ratings) == ([("old", "complete")], [(1,)])  # or not at all
    # The store goes on: a second try gets the turn, or finds it already restarted.
    again = await asyncio.wait_for(store.restart_answer(turn.answer_id), 5)
    assert (again is None) == (text == [("", "pending")])


# the Home tab ---------------------------------------------------------------------------------------------


async def test_recent_conversations_are_the_persons_own_most_recent_first(store: AnyStore, clock: Clock) -> None:
    a = ThreadKey("T1", "C1", "1700000100.000001")
    b = ThreadKey("T1", "C2", "1700000200.000001")
    c = ThreadKey("T1", "C1", "1700000300.000001")
    clock.now = 100.0
    await answered(store, a, a.thread_ts, "U2", question="asked by someone else")
    clock.now = 110.0
    await answered(store, a, "1700000101.000001", "U1", question="and me")
    clock.now = 120.0
    await answered(store, b, b.thread_ts, "U1", question="b first")
    clock.now = 130.0
    await answered(store, c, c.thread_ts, "U2", question="not mine")
    clock.now = 140.0
    await answered(store, ThreadKey("T2", "C1", "1700000400.000001"), "1700000400.000001", "U1", question="other team")
    clock.now = 150.0
    deleted = ThreadKey("T1", "C3", "1700000500.000001")
    await answered(store, deleted, deleted.thread_ts, "U1", question="deleted")
    assert await store.delete_message("T1", "C3", deleted.thread_ts)

    assert await store.recent_conversations("T1", "U1") == [
        ConversationSummary(b, "b first", 120.0),
        ConversationSummary(a, "asked by someone else", 110.0),
    ]
    # Activity in a thread (here a later answer being written) brings it to the top.
    clock.now = 160.0
    turn = await store.claim_turn(a, KIND, NewMessage("user", "more", "1700000102.000001", "U3"))
    assert turn is not None
    assert [s.key for s in await store.recent_conversations("T1", "U1")] == [a, b]
    assert [s.key for s in await store.recent_conversations("T1", "U1", limit=1)] == [a]
    assert [s.first_question for s in await store.recent_conversations("T2", "U1")] == ["other team"]
    assert await store.recent_conversations("T1", "U9") == []


async def test_channels_in_use_with_and_without_a_stored_persona(store: AnyStore, clock: Clock) -> None:
    clock.now = 100.0
    await answered(store, ThreadKey("T1", "C1", "1.000001"), "1.000001")
    clock.now = 110.0
    await answered(store, ThreadKey("T1", "C2", "2.000001"), "2.000001")
    clock.now = 120.0
    await answered(store, ThreadKey("T1", "C1", "3.000001"), "3.000001")  # C1's latest thread
    clock.now = 130.0
    await answered(store, ThreadKey("T2", "C9", "4.000001"), "4.000001")  # another workspace
    clock.now = 105.0
    await store.set_channel_persona("T1", "C2", KIND, "U1")  # older than C2's thread: the thread counts
    clock.now = 115.0
    await store.set_channel_persona("T1", "C3", DEFAULT, "U1")  # a persona, no conversation yet
    await store.set_channel_persona("T2", "C3", KIND, "U1")

    assert await store.channels_in_use("T1") == [
        ChannelUse("C1", None, 120.0),
        ChannelUse("C3", DEFAULT, 115.0),
        ChannelUse("C2", KIND, 110.0),
    ]
    assert await store.channels_in_use("T1", limit=2) == [
        ChannelUse("C1", None, 120.0),
        ChannelUse("C3", DEFAULT, 115.0),
    ]
    assert await store.channels_in_use("T2") == [ChannelUse("C9", None, 130.0), ChannelUse("C3", KIND, 115.0)]
    assert await store.channels_in_use("T9") == []


# plans and migrations ---------------------------------------------------------------------------------------

TABLES = {"a", "q", "l", "c", "m", "f", "w", "p", "messages", "conversations", "feedback", "channel_personas"}


@pytest.mark.parametrize(
    "sql,args,uses",
    [
        (queries.ANSWER_REF_QUERY, (1,), "SEARCH l USING INDEX messages_slack_ts"),
        (
            queries.RESTART_QUERY,
            (Status.PENDING, 1.0, "owner", 16.0, 1, *queries.UNFINISHED),
            "SEARCH l USING INDEX messages_slack_ts",
        ),
        # Leases and the order of a thread's turns: read on every turn and every few seconds.
        (
            queries.EARLIER_UNFINISHED_QUERY,
            (1, *queries.UNFINISHED, "1700000100.000001"),
            "SEARCH a USING INDEX messages_by_conversation",
        ),
        (
            "SELECT id FROM messages WHERE " + queries.LAPSED,
            (*queries.UNFINISHED, 1.0),
            "SEARCH messages USING INDEX messages_status",
        ),
        (
            queries.RENEW_QUERY.format(ids="?,?"),
            (16.0, "owner", *queries.UNFINISHED, 1, 2),
            "SEARCH messages USING",
        ),
        (queries.FEEDBACK_COUNTS_QUERY, ("T1",), "SEARCH f USING INDEX sqlite_autoindex_feedback_1"),
        (queries.RECENT_CONVERSATIONS_QUERY, ("U1", "T1", 10), "SEARCH w USING INDEX messages_by_user"),
        # A thread's last activity is one step down an index, not a read of each of its messages.
        (
            queries.CHANNELS_IN_USE_QUERY,
            ("T1", "T1", 50, "T1"),
            "SEARCH m USING COVERING INDEX messages_activity",
        ),
    ],
)
async def test_the_new_queries_search_indexes_and_scan_no_table(
    sqlite_store: AnyStore, sql: str, args: tuple[object, ...], uses: str
) -> None:
    # SCAN of a subquery's own rows (a few channels, one person's threads) is fine; of a table it is not.
    plan = [row[3] for row in await sqlite_store._rows("EXPLAIN QUERY PLAN " + sql, args)]
    scanned = [step for step in plan if step.startswith("SCAN") and step.split()[1] in TABLES]
    assert not scanned, plan
    assert any(step.startswith(uses) for step in plan), plan


async def test_the_feedback_migration_applies_to_a_database_of_the_previous_schema(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [m.__name__ for m in MIGRATIONS]
    new = names.index("m006_feedback_and_home")
    with monkeypatch.context() as patched:
        patched.setattr(migrations_module, "MIGRATIONS", MIGRATIONS[:new])
        async with aiosqlite.connect(path, isolation_level=None) as db:
            await migrate(db)
            # A finished turn as the bot of that schema wrote it (today's store code writes newer columns).
            await db.execute(
                "INSERT INTO conversations (id, team_id, channel_id, thread_ts, system_prompt, persona, params, "
                "created_at) VALUES (1, 'T1', 'C1', '1700000100.000001', '', 'kind', '{}', 1)"
            )
            await db.execute(
                "INSERT INTO messages (id, conversation_id, role, text, slack_user, slack_ts, status, created_at, "
                "updated_at) VALUES (1, 1, 'user', 'q', 'U1', '1700000100.000001', 'complete', 1, 1)"
            )
            await db.execute(
                "INSERT INTO messages (id, conversation_id, role, text, reply_to, slack_parts, slack_ts, status, "
                "created_at, updated_at) VALUES (2, 1, 'assistant', 'kept', 1, '[\"1700000100.000009\"]', "
                "'1700000100.000009', 'complete', 1, 1)"
            )

    async with aiosqlite.connect(path, isolation_level=None) as db:
        assert await migrate(db) == names[new:]
    store = await SQLiteStore.open(str(path))
    try:
        assert await store.record_feedback(2, "U1", "good")
        ref = await store.answer_ref(2)
        assert ref is not None and ref.text == "kept" and ref.latest
        assert [s.first_question for s in await store.recent_conversations("T1", "U1")] == ["q"]
        assert await store.take_lapsed() == []  # a finished answer of the old schema is nobody's to take over
    finally:
        await store.close()


# files a message shared ---------------------------------------------------------------------------------


async def test_a_messages_files_are_kept_with_what_was_read_of_them(store: AnyStore) -> None:
    shared = {"id": "F1", "name": "chart.png", "mimetype": "image/png", "size": 10, "url_private": "u", "x": "dropped"}
    turn = await store.claim_turn(KEY, KIND, NewMessage("user", "", "1700000100.000001", "U1", files=(shared,)))
    assert turn is not None
    [question] = await store.history(turn.conversation.id, "1700000100.000001")  # no text, but files: kept
    kept = {"id": "F1", "name": "chart.png", "mimetype": "image/png", "size": 10, "url_private": "u"}
    assert question.files == (kept,)  # the fields reading it again needs, nothing else
    read = {**question.files[0], "read": {"sent_as": "image", "text": None}}
    await store.save_files(question.id, [read])
    [question] = await store.history(turn.conversation.id, "1700000100.000001")
    assert question.files == (read,)
