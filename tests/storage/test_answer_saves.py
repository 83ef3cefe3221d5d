"""What an answer in the making writes to the store before each Slack update: its growth alone, until its status
or its first message changes (real SQLite; the writer is a stand-in that only holds the answer's messages)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.answer import Answer
from bot.core.personas import Persona
from bot.storage import NewMessage, SQLiteStore, Status, ThreadKey
from tests.storage.conftest import query


@dataclass
class Shown:
    """The writer's side an answer's saves read: the text Slack was sent and the messages it spans."""

    parts: list[str] = field(default_factory=list)
    raw: str = ""

    def append(self, text: str) -> None:
        self.raw += text


async def test_an_answer_saves_its_growth_alone_until_its_status_or_first_message_changes(
    sqlite_store: SQLiteStore,
) -> None:
    key = ThreadKey("T1", "C1", "1700000100.000001")
    turn = await sqlite_store.claim_turn(key, Persona("be brief"), NewMessage("user", "q", key.thread_ts, "U1"))
    assert turn is not None
    writer = Shown()
    answer = Answer(turn, writer, sqlite_store, "U1")  # type: ignore[arg-type]

    async def row() -> tuple[str, str, str | None, float]:
        await asyncio.sleep(0.01)  # time.time() moves between two saves
        [found] = await query(
            sqlite_store, "SELECT text, status, slack_ts, updated_at FROM messages WHERE id = ?", turn.answer_id
        )
        return found

    answer.add("Hel")
    await answer.progress()  # pending → streaming: a full save
    text, status, slack_ts, streaming_since = await row()
    assert (text, status, slack_ts) == ("Hel", "streaming", None)

    answer.add("lo")
    await answer.progress()  # only the text grew
    assert await row() == ("Hello", "streaming", None, streaming_since)

    writer.parts = ["1.2"]  # its first message was posted
    answer.add(" Ada")
    await answer.progress()
    text, status, slack_ts, posted_at = await row()
    assert (text, status, slack_ts) == ("Hello Ada", "streaming", "1.2") and posted_at > streaming_since

    writer.parts = ["1.2", "1.3"]  # a second message continues it: the first is the same
    answer.add(", and more")
    await answer.progress()
    assert await row() == ("Hello Ada, and more", "streaming", "1.2", posted_at)
    ref = await sqlite_store.answer_ref(turn.answer_id)
    assert ref is not None and ref.slack_parts == ["1.2", "1.3"]

    await answer.save(Status.COMPLETE, finish_reason="stop")
    text, status, slack_ts, finished_at = await row()
    assert (text, status, slack_ts) == ("Hello Ada, and more", "complete", "1.2") and finished_at > posted_at
