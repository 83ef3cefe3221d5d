"""Marking interrupted answers against the fake Slack: an answer a hard kill left half-written too long ago to
continue gets its note and a Try again button, and no text is ever shown twice (where the last process cut long
answers is not stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.personas import Persona
from bot.notes import RESTART_NOTE
from bot.recovery import mark_interrupted
from bot.slack.api import SlackApi
from bot.slack.blocks import RETRY_ACTION
from bot.storage import NewMessage, SQLiteStore, Status, ThreadKey
from tests.fakes import slack as fs

CHANNEL = "C0RECOVER"
THREAD = "1700000000.000900"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(str(tmp_path / "bot.db"))
    yield opened
    await opened.close()


async def left_half_written(store: SQLiteStore, api: SlackApi, texts: list[str], *, stream: bool = False) -> int:
    """An answer the last process was writing into these messages when it died; returns its id."""
    persona = Persona(system_prompt="be brief")
    turn = await store.claim_turn(ThreadKey(fs.TEAM, CHANNEL, THREAD), persona, NewMessage("user", "hi", THREAD, "U0A"))
    assert turn is not None
    parts = []
    for text in texts:
        if stream:
            data = await api.call(
                fs.TEAM,
                "chat.startStream",
                channel=CHANNEL,
                thread_ts=THREAD,
                recipient_user_id="U0A",
                recipient_team_id=fs.TEAM,
                markdown_text=text,
            )
        else:
            data = await api.post(fs.TEAM, CHANNEL, text + " ▍", thread_ts=THREAD)
        parts.append(str(data["ts"]))
    await store.save_answer(turn.answer_id, text="".join(texts), status=Status.STREAMING, slack_parts=parts)
    return turn.answer_id


async def recover(store: SQLiteStore, api: SlackApi) -> int:
    """What the next start does with answers too old to continue: take them over, and mark them."""
    store.owner = "the-next-start"  # the process that wrote them is gone
    taken = await store.take_lapsed()
    for ref in taken:
        await mark_interrupted(store, api, ref)
    return len(taken)


async def test_a_one_message_answer_is_rewritten_with_its_note_and_try_again(
    slack: fs.FakeSlack, api: SlackApi, store: SQLiteStore
) -> None:
    await left_half_written(store, api, ["Half an answer"])
    assert await recover(store, api) == 1
    [reply] = slack.bot_replies(CHANNEL, THREAD)
    assert reply.blocks_text() == f"Half an answer\n\n_⚠️ {RESTART_NOTE}_"  # the cursor is gone
    assert RETRY_ACTION in reply.actions()


async def test_a_long_answer_keeps_its_messages_and_gets_its_note_below(
    slack: fs.FakeSlack, api: SlackApi, store: SQLiteStore
) -> None:
    # Cut where the last process cut it (here: 3,500 characters, an older limit), which no one re-derives.
    texts = ["a" * 3_500, "b" * 1_000]
    await left_half_written(store, api, texts)
    await recover(store, api)
    first, second, note = slack.bot_replies(CHANNEL, THREAD)
    assert (first.text, second.text) == (texts[0] + " ▍", texts[1] + " ▍")  # as they were: nothing shown twice
    assert note.blocks_text() == f"_⚠️ {RESTART_NOTE}_" and RETRY_ACTION in note.actions()


async def test_a_stream_left_open_is_stopped_before_its_note(
    slack: fs.FakeSlack, api: SlackApi, store: SQLiteStore
) -> None:
    answer_id = await left_half_written(store, api, ["x" * 5_000], stream=True)
    await recover(store, api)
    stream, note = slack.bot_replies(CHANNEL, THREAD)
    assert not stream.streaming and stream.text == "x" * 5_000
    assert RESTART_NOTE in note.blocks_text() and RETRY_ACTION in note.actions()
    stored = await store.answer_ref(answer_id)
    assert stored is not None and stored.status is Status.PARTIAL and await store.unfinished_answers() == []
