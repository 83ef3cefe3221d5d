"""One turn's edge cases, against small fakes of the model and of Slack-out (milliseconds each).

The loopback end-to-end tests cover what crosses the wire; these cover the decisions of `Conversations`:
which note ends which failure, what the store says afterwards, and that nothing keeps running for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.conversation import Conversations, Identity
from bot.core.params import ModelParams
from bot.core.personas import Catalog, Persona
from bot.core.routing import Incoming
from bot.core.sse import Delta, Finish
from bot.mistral import ErrorKind, ModelError, RetryHook
from bot.notes import HELP, LENGTH_NOTE, NOTES, SHUTDOWN_NOTE, STOPPED_IN_SLACK, stopped_by
from bot.personas import Personas
from bot.slack.api import SlackCallError
from bot.slack.writers import AnswerStopped
from bot.storage import SQLiteStore, Turn
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
    rerun: bool | None = None  # whether they offer a re-run at all
    stop_in_slack_at: int | None = None  # this append (0: the first) finds the native stream stopped in Slack
    slack_shows: int = 0  # then Slack shows this many characters of the text
    finish_gate: asyncio.Event | None = None  # set: finish() waits here
    finishing: bool = False
    appends: int = 0
    released: bool = False  # the turn let go of it
    ts: str = "1700000099.000100"  # the answer's Slack message

    @property
    def parts(self) -> list[str]:
        return [self.ts]

    @property
    def raw(self) -> str:
        return self.text

    async def start(self, status: str = "", *, shown: str = "") -> None:
        self.started = True
        self.statuses.append(status)
        self.text = shown

    def set_status(self, status: str) -> None:
        self.statuses.append(status)

    def append(self, text: str) -> None:
        if self.fail_on_append is not None:
            raise self.fail_on_append
        if self.appends == self.stop_in_slack_at:
            self.text = self.text[: self.slack_shows]
            raise AnswerStopped("stopped in Slack")
        self.appends += 1
        self.text += text

    async def finish(self, notes: Sequence[str] = (), *, retry: bool = False, rerun: bool = True) -> None:
        self.finishing = True
        if self.finish_gate is not None:
            await self.finish_gate.wait()
        if self.fail_on_finish is not None:
            raise self.fail_on_finish
        self.notes = notes
        self.retry = retry
        self.rerun = rerun

    async def abort(self) -> None:
        self.aborted = True

    def release(self) -> None:
        self.on_progress = None
        self.released = True


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
        t = self.template
        writer = FakeWriter(
            fail_on_append=t.fail_on_append,
            fail_on_finish=t.fail_on_finish,
            stop_in_slack_at=t.stop_in_slack_at,
            slack_shows=t.slack_shows,
            finish_gate=t.finish_gate,
            ts=f"1700000099.{len(self.made) + 1:06d}",
        )
        self.made.append(writer)
        return writer

    async def close(self, grace: float) -> None:
        return None


class FakeOut:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.ephemerals: list[str] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.names = {"U0ADA": "Ada", "U0BOB": "Bob"}

    async def call(self, team_id: str, method: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((method, kwargs))
        if method == "users.info":
            return {"user": {"profile": {"display_name": self.names.get(kwargs["user"], "Ada")}}}
        return {}

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

    async def submit(self, text: str, ts: str = "1700000001.000100", thread_ts: str | None = None) -> Turn:
        message = Incoming("T0", "C0", ts, thread_ts or ts, "U0ADA", f"<@U0BOT> {text}", "channel")
        turn = await self.conversations.submit(message, BOT)
        assert turn is not None
        return turn

    async def until(self, condition: Callable[[], object]) -> None:
        async with asyncio.timeout(2):  # the store works in a thread of its own: real time, not loop turns
            while True:
                if condition():
                    return
                await asyncio.sleep(0.001)

    async def idle(self) -> None:
        async with asyncio.timeout(2):  # a stop that did not stop would wait for the gate forever
            await self.conversations.wait_idle()

    def title_calls(self) -> list[dict[str, Any]]:
        return [kwargs for method, kwargs in self.out.calls if method == "assistant.threads.setTitle"]

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
    assert writer.released and writer.on_progress is None  # the turn let go of it: no cycle outlives the answer


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
    await world.until(lambda: world.model.yielded)
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


# Stop, and the notes' Try again ------------------------------------------------------------------------


async def test_stop_mid_stream_cancels_the_model_and_keeps_what_was_shown(world: World) -> None:
    world.model.gate = asyncio.Event()  # never set: only a stop ends this stream
    world.model.scripts = [[Delta("started "), Delta("never"), Finish("stop")]]
    turn = await world.submit("hi")
    await world.until(lambda: world.model.yielded)
    assert world.conversations.stop(turn.answer_id, "U0ADA")
    await world.until(lambda: world.model.closed)  # at once, not when the model next sends something
    await world.idle()
    [writer] = world.writers.made
    assert world.model.yielded == 1 and world.model.closed == 1
    assert writer.text == "started " and writer.notes == [stopped_by("Ada")] and writer.retry is False
    assert writer.notes == ["Stopped by @Ada."]
    assert await world.answers() == [("partial", "started ")]
    assert world.conversations.answering(turn.answer_id) is None


async def test_stop_before_the_stream_began_makes_no_model_request(world: World) -> None:
    world.model.gate = asyncio.Event()  # the first turn holds the thread
    world.model.scripts = [[Delta("one"), Delta(" two"), Finish("stop")]]
    await world.submit("first", ts="1700000001.000100")
    await world.until(lambda: world.model.yielded)
    second = await world.submit("second", ts="1700000002.000100", thread_ts="1700000001.000100")
    await world.until(lambda: world.conversations.answering(second.answer_id))  # waiting for the thread's lock
    assert world.conversations.stop(second.answer_id, "U0ADA")
    world.model.gate.set()
    await world.idle()
    first_writer, second_writer = world.writers.made
    assert first_writer.notes == [] and first_writer.text == "one two"
    assert second_writer.notes == [stopped_by("Ada")] and second_writer.retry is False and second_writer.text == ""
    assert len(world.model.bodies) == 1  # only the first turn asked the model
    assert await world.answers() == [("complete", "one two"), ("failed", "")]


async def test_stop_during_finish_is_too_late_and_changes_nothing(world: World) -> None:
    world.writers.template.finish_gate = gate = asyncio.Event()
    world.model.scripts = [[Delta("all of it"), Finish("stop")]]
    turn = await world.submit("hi")
    await world.until(lambda: world.writers.made and world.writers.made[0].finishing)
    stopped = world.conversations.stop(turn.answer_id, "U0ADA")
    gate.set()
    await world.idle()
    assert not stopped
    [writer] = world.writers.made
    assert writer.notes == [] and writer.retry is False
    assert await world.answers() == [("complete", "all of it")]


async def test_stop_of_an_unknown_answer_changes_nothing(world: World) -> None:
    world.model.gate = asyncio.Event()
    world.model.scripts = [[Delta("one"), Delta(" two"), Finish("stop")]]
    turn = await world.submit("hi")
    await world.until(lambda: world.model.yielded)
    assert not world.conversations.stop(turn.answer_id + 1, "U0ADA")
    world.model.gate.set()
    await world.idle()
    assert world.model.yielded == 3 and world.writers.made[0].notes == []
    assert await world.answers() == [("complete", "one two")]
    assert not world.conversations.stop(turn.answer_id, "U0ADA")  # and once it is over


async def test_stop_pressed_twice_counts_once_and_names_the_first(world: World) -> None:
    world.model.gate = asyncio.Event()
    world.model.scripts = [[Delta("started "), Delta("never"), Finish("stop")]]
    turn = await world.submit("hi")
    await world.until(lambda: world.model.yielded)
    assert world.conversations.stop(turn.answer_id, "U0BOB")
    assert not world.conversations.stop(turn.answer_id, "U0ADA")
    await world.idle()
    [writer] = world.writers.made
    assert writer.notes == ["Stopped by @Bob."] and writer.retry is False
    assert world.model.closed == 1
    assert await world.answers() == [("partial", "started ")]


async def test_a_shutdown_mid_stream_is_no_stop_and_offers_try_again(world: World) -> None:
    world.model.gate = asyncio.Event()
    world.model.scripts = [[Delta("started "), Delta("never"), Finish("stop")]]
    turn = await world.submit("hi")
    await world.until(lambda: world.model.yielded)
    [task] = world.conversations._tasks
    task.cancel()
    [result] = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(result, asyncio.CancelledError)  # the turn still ends as cancelled
    [writer] = world.writers.made
    assert writer.notes == [SHUTDOWN_NOTE] and writer.retry is True
    assert world.model.closed == 1
    assert await world.answers() == [("partial", "started ")]
    assert not world.conversations.stop(turn.answer_id, "U0ADA")


async def test_a_stop_in_slack_keeps_what_slack_shows(world: World) -> None:
    world.writers.template.stop_in_slack_at = 2  # the third piece finds the stream stopped
    world.writers.template.slack_shows = len("one tw")  # Slack had shown less than the bot appended
    world.model.scripts = [[Delta(f"{w} ") for w in ("one", "two", "three", "four", "five")] + [Finish("stop")]]
    await world.ask("hi")
    [writer] = world.writers.made
    assert writer.notes == [STOPPED_IN_SLACK] and writer.retry is False
    assert world.model.yielded <= 3 and world.model.closed == 1  # no more tokens paid for
    assert await world.answers() == [("partial", "one tw")]


async def test_a_stop_in_slack_of_a_json_answer_stores_no_fence(world: World) -> None:
    world.conversations.personas.default = Persona("be brief", ModelParams(json_answers=True))
    world.writers.template.stop_in_slack_at = 3  # the fence, two pieces, then the stop
    world.writers.template.slack_shows = len('```\n{"a": 1')
    world.model.scripts = [[Delta('{"a": '), Delta("1, "), Delta('"b": 2}'), Finish("stop")]]
    await world.ask("hi")
    [writer] = world.writers.made
    assert writer.raw == '```\n{"a": 1' and writer.notes == [STOPPED_IN_SLACK] and writer.retry is False
    assert world.model.closed == 1
    assert await world.answers() == [("partial", '{"a": 1')]


@pytest.mark.parametrize(
    "kind,retry",
    [
        (ErrorKind.RATE_LIMITED, True),
        (ErrorKind.UNAVAILABLE, True),
        (ErrorKind.TIMEOUT, True),
        (ErrorKind.INTERRUPTED, True),
        (ErrorKind.AUTH, False),
        (ErrorKind.MODEL, False),
        (ErrorKind.REFUSED, False),
    ],
)
async def test_a_model_error_offers_try_again_only_when_it_may_pass(world: World, kind: ErrorKind, retry: bool) -> None:
    world.model.scripts = [[Delta("some "), ModelError(kind, "test")]]
    await world.ask("hi")
    [writer] = world.writers.made
    assert writer.notes == [NOTES[kind]] and writer.retry is retry
    assert await world.answers() == [("partial", "some ")]


@pytest.mark.parametrize("reason", ["length", "model_length"])
async def test_an_answer_cut_by_length_offers_try_again(world: World, reason: str) -> None:
    world.model.scripts = [[Delta("long"), Finish(reason, 1, 1, 2)]]
    await world.ask("hi")
    [writer] = world.writers.made
    assert writer.notes == [LENGTH_NOTE] and writer.retry is True


async def test_a_complete_answer_offers_no_try_again(world: World) -> None:
    await world.ask("hi")
    [writer] = world.writers.made
    assert writer.notes == [] and writer.retry is False


# DM thread titles ------------------------------------------------------------------------------------------


async def test_a_dms_first_question_titles_its_thread(world: World) -> None:
    ts = "1700000001.000100"
    question = "what is the *capital* of France &amp; why?"
    await world.conversations.submit(Incoming("T0", "D0", ts, ts, "U0ADA", question, "im"), BOT)
    await world.idle()
    assert world.title_calls() == [
        {
            "urgent": False,
            "retry_rate_limited": False,
            "channel_id": "D0",
            "thread_ts": ts,
            "title": "what is the capital of France & why?",
        }
    ]
    assert await world.answers() == [("complete", "ok")]
    follow_up = Incoming("T0", "D0", "1700000002.000100", ts, "U0ADA", "and Spain?", "im")
    await world.conversations.submit(follow_up, BOT)
    await world.idle()
    assert len(world.title_calls()) == 1  # the thread keeps its first title
    assert await world.answers() == [("complete", "ok"), ("complete", "ok")]


async def test_a_channel_question_sets_no_title(world: World) -> None:
    await world.ask("what is the capital of France?")
    assert world.title_calls() == [] and await world.answers() == [("complete", "ok")]
