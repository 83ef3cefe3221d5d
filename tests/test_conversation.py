"""One turn's edge cases, against small fakes of the model and of Slack-out (milliseconds each).

The loopback end-to-end tests cover what crosses the wire; these cover the decisions of `Conversations`:
which note ends which failure, what the store says afterwards, and that nothing keeps running for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.conversation import Conversations, Identity
from bot.core.params import ModelParams
from bot.core.personas import Catalog, Persona
from bot.core.routing import Incoming
from bot.core.sse import Delta, Finish
from bot.mistral import ErrorKind, ModelError, RetryHook
from bot.notes import HELP, LENGTH_NOTE, NOTES, SHUTDOWN_NOTE
from bot.personas import Personas
from bot.slack.api import SlackCallError
from bot.storage import SQLiteStore
from bot.tokens import TokenCounter
from bot.users import UserDirectory

BOT = Identity(bot_user_id="U0BOT", bot_name="mistral")


class FakeModel:
    """Plays one script per request: text pieces, then a Finish, or an exception at any point."""

    def __init__(self) -> None:
        self.scripts: list[list[Delta | Finish | BaseException]] = []
        self.bodies: list[dict[str, Any]] = []
        self.yielded = 0
        self.closed = 0
        self.gate: asyncio.Event | None = None  # set: the stream waits here after its first piece

    async def stream(self, body: dict[str, Any], on_retry: RetryHook | None = None) -> AsyncIterator[Delta | Finish]:
        self.bodies.append(body)
        script = self.scripts.pop(0) if self.scripts else [Delta("ok"), Finish("stop", 10, 1, 11)]
        try:
            for item in script:
                if isinstance(item, BaseException):
                    raise item
                yield item
                self.yielded += 1
                if self.gate is not None:
                    await self.gate.wait()
        finally:
            self.closed += 1  # the HTTP stream would be closed here: no more tokens are paid for

    async def context_length(self, model: str) -> int:
        return 32_768


@dataclass
class FakeWriter:
    fail_on_append: SlackCallError | None = None
    fail_on_finish: SlackCallError | None = None
    text: str = ""
    statuses: list[str] = field(default_factory=list)
    notes: Sequence[str] | None = None
    aborted: bool = False
    on_progress: Any = None
    started: bool = False
    retry: bool | None = None  # whether the final controls offer Try again

    @property
    def parts(self) -> list[str]:
        return ["1700000099.000100"]

    @property
    def raw(self) -> str:
        return self.text

    async def start(self, status: str = "") -> None:
        self.started = True
        self.statuses.append(status)

    def set_status(self, status: str) -> None:
        self.statuses.append(status)

    def append(self, text: str) -> None:
        if self.fail_on_append is not None:
            raise self.fail_on_append
        self.text += text

    async def finish(self, notes: Sequence[str] = (), *, retry: bool = False) -> None:
        if self.fail_on_finish is not None:
            raise self.fail_on_finish
        self.notes = notes
        self.retry = retry

    async def abort(self) -> None:
        self.aborted = True


class FakeWriters:
    def __init__(self) -> None:
        self.made: list[FakeWriter] = []
        self.template = FakeWriter()

    def new(
        self,
        team_id: str,
        channel: str,
        thread_ts: str,
        *,
        recipient_user_id: str,
        answer_id: int = 0,
        reuse: Sequence[str] = (),
    ) -> FakeWriter:
        writer = FakeWriter(self.template.fail_on_append, self.template.fail_on_finish)
        self.made.append(writer)
        return writer

    async def close(self, grace: float) -> None:
        return None


class FakeOut:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.ephemerals: list[str] = []

    async def call(self, team_id: str, method: str, **kwargs: Any) -> dict[str, Any]:
        return {"user": {"profile": {"display_name": "Ada"}}} if method == "users.info" else {}

    async def post(self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None, **extra: Any) -> Any:
        self.posts.append({"channel": channel, "text": text, "thread_ts": thread_ts})
        return {"channel": channel, "ts": f"17000001{len(self.posts):02d}.000100"}

    async def update(self, team_id: str, channel: str, ts: str, text: str) -> None:
        return None

    async def ephemeral(self, team_id: str, channel: str, user: str, text: str, thread_ts: str | None = None) -> bool:
        self.ephemerals.append(text)
        return True


@dataclass
class World:
    conversations: Conversations
    model: FakeModel
    writers: FakeWriters
    out: FakeOut
    store: SQLiteStore

    async def ask(self, text: str, ts: str = "1700000001.000100") -> None:
        message = Incoming("T0", "C0", ts, ts, "U0ADA", f"<@U0BOT> {text}", "channel")
        await self.conversations.submit(message, BOT)
        await self.conversations.wait_idle()

    async def answers(self) -> list[tuple[str, str]]:
        rows = await self.store._rows("SELECT status, text FROM messages WHERE role = 'assistant' ORDER BY id")
        return [(r[0], r[1]) for r in rows]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = await SQLiteStore.open(":memory:")
    model, writers, out = FakeModel(), FakeWriters(), FakeOut()
    conversations = Conversations(
        store=store,
        model=model,
        out=out,
        writers=writers,
        personas=Personas(
            store, Catalog(), default=Persona("be brief"), defaults=ModelParams(model="m"), admins=frozenset()
        ),
        tokens=TokenCounter(),
        users=UserDirectory(out),  # type: ignore[arg-type]
    )
    yield World(conversations, model, writers, out, store)
    await store.close()


async def test_a_complete_answer_is_shown_and_stored(world: World) -> None:
    world.model.scripts = [[Delta("Hello "), Delta("Ada"), Finish("stop", 10, 2, 12)]]
    await world.ask("hi")
    [writer] = world.writers.made
    assert writer.text == "Hello Ada" and writer.notes == []
    assert await world.answers() == [("complete", "Hello Ada")]
    assert world.model.bodies[0]["messages"][0] == {"role": "system", "content": "be brief"}


async def test_a_message_is_answered_once(world: World) -> None:
    await world.ask("hi")
    await world.ask("hi")  # a redelivery, or the app_mention/message twin
    assert len(world.writers.made) == 1 and len(world.model.bodies) == 1


async def test_a_bare_mention_gets_help_and_no_model_call(world: World) -> None:
    await world.ask("")
    assert world.writers.made[0].text == HELP and not world.model.bodies


@pytest.mark.parametrize(
    "kind,status",
    [(ErrorKind.AUTH, "failed"), (ErrorKind.MODEL, "failed"), (ErrorKind.UNAVAILABLE, "failed")],
)
async def test_a_model_error_before_any_text_ends_in_its_note(world: World, kind: ErrorKind, status: str) -> None:
    world.model.scripts = [[ModelError(kind, "test")]]
    await world.ask("hi")
    assert world.writers.made[0].notes == [NOTES[kind]]
    assert await world.answers() == [(status, "")]


async def test_a_stream_cut_mid_answer_keeps_the_partial_text(world: World) -> None:
    world.model.scripts = [[Delta("half an "), ModelError(ErrorKind.INTERRUPTED, "cut")]]
    await world.ask("hi")
    assert world.writers.made[0].notes == [NOTES[ErrorKind.INTERRUPTED]]
    assert await world.answers() == [("partial", "half an ")]


async def test_an_answer_cut_by_max_tokens_says_so(world: World) -> None:
    world.model.scripts = [[Delta("long"), Finish("length", 1, 1, 2)]]
    await world.ask("hi")
    assert world.writers.made[0].notes == [LENGTH_NOTE]
    assert await world.answers() == [("complete", "long")]


async def test_a_writer_that_slack_broke_stops_the_model_and_tells_the_person(world: World) -> None:
    world.writers.template.fail_on_append = SlackCallError("chat.update", "internal_error", transient=True)
    world.model.scripts = [[Delta(f"w{i} ") for i in range(100)] + [Finish("stop")]]
    await world.ask("hi")
    assert world.model.yielded <= 1 and world.model.closed == 1  # no more tokens paid for
    assert world.writers.made[0].aborted
    assert "internal_error" in world.out.ephemerals[0]
    assert "Slack didn't take my answer" in world.out.posts[-1]["text"]  # and in the thread, if it can
    assert await world.answers() == [("failed", "")]


async def test_a_thread_that_cannot_take_answers_is_told_privately(world: World) -> None:
    world.writers.template.fail_on_finish = SlackCallError("chat.update", "restricted_action_thread_locked")
    await world.ask("hi")
    assert "locked" in world.out.ephemerals[0] and not world.out.posts
    assert await world.answers() == [("partial", "ok")]


async def test_a_shutdown_mid_answer_leaves_a_note_and_a_partial_row(world: World) -> None:
    world.model.gate = asyncio.Event()  # the model stalls after its first piece
    world.model.scripts = [[Delta("started "), Delta("never")]]
    message = Incoming("T0", "C0", "1700000001.000100", "1700000001.000100", "U0ADA", "<@U0BOT> hi", "channel")
    await world.conversations.submit(message, BOT)
    for _ in range(50):
        await asyncio.sleep(0)
        if world.model.yielded:
            break
    await world.conversations.drain(grace=0.01)
    assert world.writers.made[0].notes == [SHUTDOWN_NOTE]
    assert await world.answers() == [("partial", "started ")]
    assert world.model.closed == 1


async def test_a_mentions_twin_event_is_refused_without_a_store_trip(world: World) -> None:
    claims = 0
    claim = world.store.claim_turn

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await claim(*args, **kwargs)

    world.store.claim_turn = counting  # type: ignore[method-assign]
    await world.ask("hi")
    await world.ask("hi")  # the same message as `message` after `app_mention`
    assert claims == 1 and len(world.model.bodies) == 1
