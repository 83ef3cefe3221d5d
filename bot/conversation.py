"""One turn of a conversation: a person's Slack message → stored history → model stream → Slack answer.

`Conversations` claims each Slack message once (the store's unique key makes redeliveries and the
app_mention/message pair harmless), runs the turns of one thread in order and different threads
concurrently, one asyncio task per answer, and leaves every failure as a clear note in the thread and a
consistent row in the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from bot.agent_view import set_thread_title
from bot.answer import Answer, LeaseLost, Stopped
from bot.context import FileReader, ThreadContext
from bot.core.routing import Action, Incoming, classify_event
from bot.core.slack_text import strip_leading_mention
from bot.core.sse import Finish
from bot.mistral import ErrorKind, ModelError
from bot.model_stream import JSON_FENCE, stream_answer
from bot.notes import (
    CANNOT_POST,
    HELP,
    LENGTH_NOTE,
    NOTES,
    RETRYABLE,
    SHUTDOWN_NOTE,
    TRUNCATED_NOTE,
    TRY_AGAIN,
    UNEXPECTED_NOTE,
    files_refused,
    stopped_by,
)
from bot.personas import Personas
from bot.ports import Model, SlackOut, WriterFactory
from bot.slack.api import RateLimited, SlackCallError
from bot.slack.blocks import final_controls, message_blocks
from bot.slack.writers import AnswerStopped, with_notes
from bot.storage import NewMessage, Persona, Status, Store, StoreUnavailable, ThreadKey, Turn, Usage
from bot.tokens import TokenCounter
from bot.users import UserDirectory

log = logging.getLogger(__name__)

# Recently claimed messages remembered in memory, so a mention's twin event costs no store transaction.
RECENT_CLAIMS = 10_000
# How long a failure note may take to show before the answer is left as it is.
NOTE_TIMEOUT = 15.0
# Claiming a message must be done (or refused, so that Slack sends it again) within Slack's 3 s deadline.
CLAIM_DEADLINE = 2.5
# How often a turn looks whether the answer to an earlier question of its thread, written by another replica,
# is done.
EARLIER_POLL = 0.2


@dataclass(frozen=True)
class Identity:
    bot_user_id: str
    bot_name: str = "assistant"


class Conversations:
    def __init__(
        self,
        *,
        store: Store,
        model: Model,
        out: SlackOut,
        writers: WriterFactory,
        personas: Personas,
        tokens: TokenCounter,
        users: UserDirectory,
        context_tokens: int | None = None,
        total_timeout: float = 600.0,
        files: FileReader | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.out = out
        self.writers = writers
        self.personas = personas
        self.users = users
        self.context = ThreadContext(
            store=store, model=model, out=out, tokens=tokens, users=users, context_tokens=context_tokens, files=files
        )
        self._total_timeout = total_timeout
        self._thread_locks: dict[ThreadKey, tuple[asyncio.Lock, int]] = {}  # lock, turns using it
        self._tasks: set[asyncio.Task[None]] = set()
        # Messages this process claimed lately; the store's unique claim stays the authority (restarts, replicas).
        self._claimed: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._answering: dict[int, Answer] = {}  # answers in flight, by answer id (what Stop finds)
        self.accepting = True
        self._handing_over = False  # stopping: answers still in flight go to another process, not to a note

    # Slack in ----------------------------------------------------------------------------------------

    async def on_event(self, event: dict[str, Any], *, team_id: str, identity: Identity) -> None:
        """An `app_mention` or `message` event: answer, update history, or ignore. Returns quickly."""
        decision = classify_event(event, team_id=team_id, bot_user_id=identity.bot_user_id)
        message = decision.message
        if decision.action is Action.IGNORE or message is None:
            return
        if decision.action is Action.EDIT:
            if await self.store.edit_message(message.team_id, message.channel_id, message.ts, message.text):
                log.info("updated an edited message %s in %s", message.ts, message.channel_id)
            return
        if decision.action is Action.DELETE:
            if await self.store.delete_message(message.team_id, message.channel_id, message.ts):
                log.info("dropped a deleted message %s in %s from history", message.ts, message.channel_id)
            return
        if not self.accepting:
            return
        key = ThreadKey(message.team_id, message.channel_id, message.thread_ts)
        if decision.action is Action.ANSWER_IF_KNOWN and await self.store.get_conversation(key) is None:
            return  # a thread the bot takes no part in
        await self.submit(message, identity)

    async def submit(self, message: Incoming, identity: Identity) -> Turn | None:
        """Claim `message` and answer it in the background; None if it was claimed before."""
        key = ThreadKey(message.team_id, message.channel_id, message.thread_ts)
        seen = (message.team_id, message.channel_id, message.ts)
        if seen in self._claimed:
            return None  # the app_mention/message twin, or a redelivery, seconds later: no store trip needed
        turn = await self._claim(key, message)
        self._claimed[seen] = None
        while len(self._claimed) > RECENT_CLAIMS:
            self._claimed.popitem(last=False)
        if turn is None:
            log.debug("message %s in %s already claimed", message.ts, message.channel_id)
            return None
        if turn.created_conversation and message.is_dm:
            self.spawn(set_thread_title(self.out, key.team_id, key.channel_id, key.thread_ts, message.text), "title")
        self.start_turn(turn, message, identity)
        return turn

    async def _claim(self, key: ThreadKey, message: Incoming) -> Turn | None:
        """`store.claim_turn`, tried again while the database is briefly out of reach; past CLAIM_DEADLINE it
        raises TimeoutError: the event is refused (not acknowledged), and Slack sends it again later."""
        new = NewMessage("user", message.text, message.ts, message.user_id, files=message.files)
        delay = 0.1
        async with asyncio.timeout(CLAIM_DEADLINE):
            while True:
                try:
                    persona: Persona = await self.personas.current(message.team_id, message.channel_id)
                    return await self.store.claim_turn(key, persona, new)
                except StoreUnavailable as exc:
                    log.warning("the database is out of reach (%s); trying the claim again", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)

    def start_turn(
        self,
        turn: Turn,
        message: Incoming,
        identity: Identity,
        *,
        reuse: Sequence[str] = (),
        backfill: bool = True,
        resume: str = "",
    ) -> None:
        """Answer a claimed turn in the background. `reuse`: the Slack messages of the answer it replaces
        (Try again, Regenerate) or continues; `backfill`: read the thread from Slack when the bot is new to it;
        `resume`: the text an interrupted answer had, which the model continues (taking over)."""
        work = self._answer(turn, message, identity, reuse=reuse, backfill=backfill, resume=resume)
        self.spawn(work, f"turn-{message.ts}")

    def in_flight(self) -> list[int]:
        """The answers this process is writing (their leases are renewed)."""
        return list(self._answering)

    def lost(self, answer_ids: set[int]) -> None:
        """Another process took these answers over: they show nothing more."""
        for answer_id in answer_ids:
            answer = self._answering.get(answer_id)
            if answer is not None:
                log.warning("answer %d was taken over by another process; leaving it to that one", answer_id)
                answer.lost = True

    def answering(self, answer_id: int) -> tuple[Turn, str] | None:
        """The turn and asker of an answer this process is writing now, or None."""
        answer = self._answering.get(answer_id)
        return (answer.turn, answer.asker) if answer is not None else None

    def stop(self, answer_id: int, user_id: str) -> bool:
        """Stop an answer this process is writing; False when it is not writing it (any more)."""
        answer = self._answering.get(answer_id)
        if answer is None or not answer.stoppable:
            return False
        log.info("%s stopped answer %d", user_id, answer_id)
        answer.stop(user_id)
        return True

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` as a tracked task: shutdown waits for it, and nothing it raises is silently lost."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    # one turn ------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _thread_turn(self, key: ThreadKey) -> AsyncIterator[None]:
        lock, users = self._thread_locks.get(key, (asyncio.Lock(), 0))
        self._thread_locks[key] = (lock, users + 1)
        try:
            async with lock:  # asyncio locks are fair: turns run in arrival order
                yield
        finally:
            lock, users = self._thread_locks[key]
            if users == 1:
                del self._thread_locks[key]  # the thread is idle: forget its lock
            else:
                self._thread_locks[key] = (lock, users - 1)

    async def _after_earlier_answers(self, turn: Turn) -> None:
        """Wait while another process writes the answer to an earlier question of the thread: each answer
        builds on the one before. (This process's own turns are kept in order by `_thread_turn`.)"""
        waited = 0.0
        while await self.store.earlier_unfinished(turn.conversation.id, turn.user_ts):
            if waited >= self._total_timeout:
                log.warning("gave up waiting for the answer before %s; answering anyway", turn.user_ts)
                return
            await asyncio.sleep(EARLIER_POLL)
            waited += EARLIER_POLL

    async def _answer(
        self,
        turn: Turn,
        message: Incoming,
        identity: Identity,
        *,
        reuse: Sequence[str],
        backfill: bool,
        resume: str = "",
    ) -> None:
        key = turn.conversation.key
        writer = self.writers.new(
            key.team_id,
            key.channel_id,
            key.thread_ts,
            recipient_user_id=message.user_id,
            answer_id=turn.answer_id,
            reuse=reuse,
        )
        answer = Answer(turn, writer, self.store, message.user_id)
        answer.text = resume
        writer.on_progress = answer.progress
        self._answering[turn.answer_id] = answer
        media: list[str] = []  # the question's files sent as images or documents
        try:
            params = self.personas.effective(turn.conversation.persona)
            if self.store.shared:
                await self._after_earlier_answers(turn)  # before the local lock, which the earlier one may need
            async with self._thread_turn(key):
                await writer.start(shown=(JSON_FENCE if params.json_answers and resume else "") + resume)
                await answer.save(Status.STREAMING)
                if not strip_leading_mention(message.text, identity.bot_user_id) and not message.files:
                    answer.streamed = True  # no model stream to stop
                    answer.add(HELP)  # a bare mention
                    await writer.finish()
                    await answer.save(Status.COMPLETE)
                    return
                if backfill and turn.created_conversation and message.in_thread:
                    await self.context.backfill(turn, before_ts=message.ts, bot_user_id=identity.bot_user_id)
                # An interrupted answer goes on from its text: the model continues it as an assistant prefix.
                asked = replace(params, prefix=resume) if resume else params
                prompt, files = await self.context.prompt(
                    turn, asked, bot_user_id=identity.bot_user_id, bot_name=identity.bot_name
                )
                media = files.media
                finish = await stream_answer(
                    self.model, prompt, asked, answer, resume=resume, total_timeout=self._total_timeout
                )
                notes = list(files.notes)  # files left out or cut, each named
                if prompt.truncated_question:
                    notes.append(TRUNCATED_NOTE)
                cut_short = finish is not None and finish.reason in ("length", "model_length")
                if cut_short:
                    notes.append(LENGTH_NOTE)
                await writer.finish(notes, retry=cut_short)
                usage = _usage(finish)
                await answer.save(Status.COMPLETE, finish_reason=finish.reason if finish else None, usage=usage)
                if usage:
                    log.info(
                        "answered %s in %s: %d prompt + %d completion tokens",
                        message.ts,
                        key.channel_id,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                    )
        except Stopped:
            who = answer.stopped_by
            name = await self.users.name(key.team_id, who) if who else None
            await self._end_with_note(answer, stopped_by(name), retry=False)
        except AnswerStopped:
            answer.keep_shown()  # Slack's own stop control: Slack shows what it had, and names nobody
            await self._end_with_note(answer, stopped_by(None), retry=False)
        except ModelError as exc:
            log.warning("model error answering %s in %s: %s", message.ts, key.channel_id, exc)
            passing = exc.kind in RETRYABLE  # a wrong key, model or request would fail the same way again
            note = NOTES[exc.kind]
            if exc.kind is ErrorKind.REFUSED and media:
                note = files_refused(media)  # most likely a model without vision, or documents, behind the API
            await self._end_with_note(answer, note, retry=passing, rerun=passing)
        except LeaseLost:
            await writer.abort()  # the process that took it over writes it from here
        except SlackCallError as exc:
            await writer.abort()
            await answer.save(answer.unfinished_status)
            await self._undeliverable(exc, message, turn.answer_id)
        except asyncio.CancelledError:
            if self._handing_over:
                await asyncio.shield(self._hand_over(answer))
            else:
                await asyncio.shield(self._end_with_note(answer, SHUTDOWN_NOTE, retry=True))
            raise
        except Exception:
            log.exception("unexpected error answering %s in %s", message.ts, key.channel_id)
            await self._end_with_note(answer, UNEXPECTED_NOTE, retry=True)
        finally:
            self._answering.pop(turn.answer_id, None)

    async def _hand_over(self, answer: Answer) -> None:
        """Stopping: leave the answer as Slack shows it, saved, with its lease let go, so that another process
        (another replica, or this one's next start) takes it over at once and continues it."""
        answer.writer.on_progress = None
        await answer.writer.abort()
        try:
            await answer.save(Status.STREAMING)
            await self.store.release_leases([answer.turn.answer_id])
            log.info("handed answer %d over to the next process", answer.turn.answer_id)
        except (LeaseLost, StoreUnavailable) as exc:
            log.warning("could not hand answer %d over (%s); its lease lapses instead", answer.turn.answer_id, exc)

    async def _end_with_note(self, answer: Answer, note: str, *, retry: bool, rerun: bool = True) -> None:
        """Best effort: the thread shows the note and the store says partial/failed, whatever Slack does."""
        writer = answer.writer
        writer.on_progress = None  # the final status below must not be overwritten by a progress save
        key = answer.turn.conversation.key
        try:
            if writer.started:
                async with asyncio.timeout(NOTE_TIMEOUT):
                    await writer.finish([note], retry=retry, rerun=rerun)
            else:  # stopped before the first sign of life
                await self._post_note(key, note, answer.turn.answer_id if retry and rerun else None)
        except (SlackCallError, RateLimited, TimeoutError, AnswerStopped) as exc:
            log.warning("could not show the failure note: %r", exc)
            await writer.abort()
        finally:
            await answer.save(answer.unfinished_status)

    async def _post_note(self, key: ThreadKey, note: str, retry_answer: int | None) -> None:
        """A failure note as a message of its own, with the Try again button of `retry_answer`, if any."""
        text = with_notes("", [note])
        controls = final_controls(retry_answer, answered=False, retry=True) if retry_answer is not None else []
        blocks = message_blocks(text, controls) if controls else None
        extra = {"blocks": blocks} if blocks else {}
        await self.out.post(key.team_id, key.channel_id, text, thread_ts=key.thread_ts, **extra)

    async def _undeliverable(self, exc: SlackCallError, message: Incoming, answer_id: int) -> None:
        """Slack would not take (the rest of) an answer: say so in the thread if it can, and privately."""
        log.warning("cannot write to %s (%s): %s", message.channel_id, exc.method, exc.error)
        if exc.error in CANNOT_POST:
            text = f"I couldn't post my answer there: {CANNOT_POST[exc.error]}"
        else:
            text = f"Slack didn't take my answer (it said `{exc.error}`), so it may be incomplete. {TRY_AGAIN}"
            try:  # a new message may get through where updating the old one failed
                key = ThreadKey(message.team_id, message.channel_id, message.thread_ts)
                await self._post_note(key, text, answer_id)
            except (SlackCallError, RateLimited) as post_exc:
                log.warning("could not post the failure note either: %s", post_exc)
        await self.out.ephemeral(message.team_id, message.channel_id, message.user_id, text, message.thread_ts)

    # life cycle -------------------------------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Stop taking new turns, let answers in flight finish for `grace` seconds, then hand the rest over to
        another process (a shared database) or interrupt them with a note (SQLite: no other process can)."""
        self.accepting = False
        deadline = asyncio.get_running_loop().time() + grace
        if self._tasks:
            log.info("waiting up to %.0fs for %d answers in flight", grace, len(self._tasks))
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            self._handing_over = self.store.shared
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.info("interrupted %d answers at shutdown", len(pending))
        # Complete answers may still be closing their streams (Tier 2); what is left of the grace is theirs.
        await self.writers.close(max(deadline - asyncio.get_running_loop().time(), 1.0))

    async def wait_idle(self) -> None:
        """Until every answer in flight is done (tests use this to wait for the bot)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)


def _usage(finish: Finish | None) -> Usage | None:
    if finish is None or finish.prompt_tokens is None or finish.completion_tokens is None:
        return None
    total = finish.total_tokens if finish.total_tokens is not None else finish.prompt_tokens + finish.completion_tokens
    return Usage(finish.prompt_tokens, finish.completion_tokens, total)
