"""One turn of a conversation: a person's Slack message → stored history → model stream → Slack answer.

`Conversations` claims each Slack message once (the store's unique key makes redeliveries and the
app_mention/message pair harmless), runs the turns of one thread in order and different threads
concurrently, one asyncio task per answer, and leaves every failure as a clear note in the thread and a
consistent row in the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.admission import Admission, Policy
from bot.agent_view import set_thread_title
from bot.answer import Answer, LeaseLost, Stopped
from bot.context import FileReader, ThreadContext
from bot.core.recent import RecentKeys
from bot.core.redact import Redactor, withheld_note
from bot.core.routing import Action, Incoming, classify_event
from bot.core.slack_text import strip_leading_mention
from bot.core.sse import Finish
from bot.endings import Endings
from bot.logs import bind_answer
from bot.metrics import Metrics
from bot.mistral import ErrorKind, ModelError
from bot.model_stream import JSON_FENCE, stream_answer
from bot.notes import (
    HELP,
    LENGTH_NOTE,
    NOTES,
    RETRYABLE,
    SHUTDOWN_NOTE,
    TRUNCATED_NOTE,
    UNEXPECTED_NOTE,
    files_refused,
    stopped_by,
)
from bot.personas import Personas
from bot.ports import Model, SlackOut, WriterFactory
from bot.slack.api import SlackCallError
from bot.slack.writers import AnswerStopped
from bot.storage import NewMessage, Persona, Status, Store, StoreUnavailable, ThreadKey, Turn, Usage
from bot.thread_order import ThreadOrder
from bot.tokens import TokenCounter
from bot.users import UserDirectory

log = logging.getLogger(__name__)

# Messages this process claimed are remembered for a while, so that a mention's twin event (the app_mention and
# the message event come moments apart) costs no store transaction; the store's claim catches anything later.
CLAIMS_REMEMBERED_SECONDS = 120.0
RECENT_CLAIMS = 10_000  # and at most this many, whatever the pace
# Claiming a message must be done (or refused, so that Slack sends it again) within Slack's 3 s deadline.
CLAIM_DEADLINE = 2.5


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
        policy: Policy | None = None,
        redact: Redactor | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.out = out
        self.writers = writers
        self.personas = personas
        self.users = users
        self.admission = Admission(store, out, policy or Policy())
        self.endings = Endings(out)
        self.redact = redact or Redactor.parse(None)
        self.metrics = metrics or Metrics()
        self.context = ThreadContext(
            store=store,
            model=model,
            out=out,
            tokens=tokens,
            users=users,
            context_tokens=context_tokens,
            files=files,
            redact=self.redact,
        )
        self._total_timeout = total_timeout
        self.order = ThreadOrder(store, patience=total_timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        # Messages this process claimed lately; the store's unique claim stays the authority (restarts, replicas).
        self._claimed: RecentKeys[tuple[str, str, str]] = RecentKeys(RECENT_CLAIMS, CLAIMS_REMEMBERED_SECONDS)
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
            text, _ = self.redact.redact(message.text)
            if await self.store.edit_message(message.team_id, message.channel_id, message.ts, text):
                log.info("updated an edited message %s in %s", message.ts, message.channel_id)
            return
        if decision.action is Action.DELETE:
            if await self.store.delete_message(message.team_id, message.channel_id, message.ts):
                log.info("dropped a deleted message %s in %s from history", message.ts, message.channel_id)
            return
        if not self.accepting:
            return
        refusal = self.admission.refusal(message.channel_id, message.user_id)
        if refusal is not None:
            if decision.action is Action.ANSWER:  # a mention or a DM: told once; follow-ups: silence
                await self.admission.refuse(message, refusal)
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
        if self.redact.active:  # before the text reaches the store (and from there the model)
            text, withheld = self.redact.redact(message.text)
            message = replace(message, text=text, withheld=tuple(withheld.items()))
        turn = await self._claim(key, message)
        self._claimed.add(seen)
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
        bind_answer(key.team_id, key.channel_id, key.thread_ts, turn.answer_id)  # on every line this task logs
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
        self.metrics.answer_started()
        began = time.monotonic()
        outcome: str | None = None  # how it ended, for the metrics; None: another process finishes it
        media: list[str] = []  # the question's files sent as images or documents
        try:
            params = self.personas.effective(turn.conversation.persona)
            async with self.order.turn(turn):
                asks_model = bool(strip_leading_mention(message.text, identity.bot_user_id) or message.files)
                if asks_model and not resume:
                    refusal = await self.admission.over_quota(key.team_id, message.user_id)
                    if refusal is not None:
                        outcome = "refused"
                        await self.endings.refused(answer, message, refusal.text)
                        return
                await writer.start(shown=(JSON_FENCE if params.json_answers and resume else "") + resume)
                await answer.save(Status.STREAMING)
                if not asks_model:
                    answer.streamed = True  # no model stream to stop
                    answer.add(HELP)  # a bare mention
                    await writer.finish()
                    await answer.save(Status.COMPLETE)
                    outcome = "complete"
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
                withheld = Counter(dict(message.withheld)) + files.withheld
                if withheld:
                    notes.append(withheld_note(withheld))
                if prompt.truncated_question:
                    notes.append(TRUNCATED_NOTE)
                cut_short = finish is not None and finish.reason in ("length", "model_length")
                if cut_short:
                    notes.append(LENGTH_NOTE)
                await writer.finish(notes, retry=cut_short)
                usage = _usage(finish)
                await answer.save(Status.COMPLETE, finish_reason=finish.reason if finish else None, usage=usage)
                outcome = "complete"
                if usage is not None:
                    await self.admission.record(turn, message.user_id, asked.model or "", usage)
        except Stopped:
            outcome = "stopped"
            who = answer.stopped_by
            name = await self.users.name(key.team_id, who) if who else None
            await self.endings.with_note(answer, stopped_by(name), retry=False)
        except AnswerStopped:
            outcome = "stopped"
            answer.keep_shown()  # Slack's own stop control: Slack shows what it had, and names nobody
            await self.endings.with_note(answer, stopped_by(None), retry=False)
        except ModelError as exc:
            outcome = answer.unfinished_status.value
            log.warning("model error answering %s in %s: %s", message.ts, key.channel_id, exc)
            passing = exc.kind in RETRYABLE  # a wrong key, model or request would fail the same way again
            note = NOTES[exc.kind]
            if exc.kind is ErrorKind.REFUSED and media:
                note = files_refused(media)  # most likely a model without vision, or documents, behind the API
            await self.endings.with_note(answer, note, retry=passing, rerun=passing)
        except LeaseLost:
            await writer.abort()  # the process that took it over writes it from here
        except SlackCallError as exc:
            outcome = answer.unfinished_status.value
            await writer.abort()
            await answer.save(answer.unfinished_status)
            await self.endings.undeliverable(exc, message, turn.answer_id)
        except asyncio.CancelledError:
            if self._handing_over:
                await asyncio.shield(self._hand_over(answer))
            else:
                outcome = answer.unfinished_status.value
                await asyncio.shield(self.endings.with_note(answer, SHUTDOWN_NOTE, retry=True))
            raise
        except Exception:
            outcome = answer.unfinished_status.value
            log.exception("unexpected error answering %s in %s", message.ts, key.channel_id)
            await self.endings.with_note(answer, UNEXPECTED_NOTE, retry=True)
        finally:
            writer.release()  # no reference cycle outlives the answer
            self._answering.pop(turn.answer_id, None)
            self.metrics.answer_finished(outcome, time.monotonic() - began)

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
    return Usage(finish.prompt_tokens, finish.completion_tokens, total, finish.cached_tokens or 0)
