"""Slack-out's writer factory: a writer per answer (`bot.slack.answer_writer.AnswerWriter`), and what outlives one
answer: the writer tasks still closing streams, and the channels where Slack refused native streaming or
loading states.

One writer task per answer, one loop for every way of writing (chat.update messages, native streams): see
`bot.slack.answer_writer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from bot.core.splitting import STREAM_MAX_AGE
from bot.slack.answer_writer import AnswerStopped, AnswerWriter, ProgressHook
from bot.slack.api import SlackApi
from bot.slack.pacer import Clock
from bot.slack.status import THINKING, ChannelSet

log = logging.getLogger(__name__)

__all__ = ["THINKING", "AnswerStopped", "AnswerWriter", "Writer", "Writers"]

# An answer's intermediate updates are at least this far apart; the budget may space them further.
MIN_UPDATE_INTERVAL = 1.0
# Refusals that are about the channel (remembered: chat.update there from now on), not about one stream.
CHANNEL_REFUSALS = frozenset({"channel_type_not_supported", "feature_not_enabled", "missing_scope", "unknown_method"})


class Writer(Protocol):
    """What a conversation needs from Slack-out to show one answer."""

    on_progress: ProgressHook | None
    raw: str  # the answer's text; after `AnswerStopped`, exactly what Slack shows

    @property
    def parts(self) -> list[str]:
        """The ts of every Slack message the answer spans, in order (none before its first message)."""
        ...

    @property
    def started(self) -> bool:
        """start() has shown the first sign of life (a loading state or a message)."""
        ...

    async def start(self, status: str = THINKING, *, shown: str = "") -> None: ...

    def set_status(self, status: str) -> None: ...

    def append(self, text: str) -> None: ...

    async def finish(self, notes: Sequence[str] = (), *, retry: bool = False, rerun: bool = True) -> None: ...

    async def abort(self) -> None: ...

    def release(self) -> None:
        """The answer's turn is over: drop the links that would keep the answer alive (the progress hook)."""
        ...


class Writers:
    """Makes each answer's writer, and remembers the channels where Slack refused native streaming or loading
    states."""

    REFUSED_CAP = 10_000  # channels remembered; the oldest are forgotten (and tried again) first

    def __init__(
        self,
        api: SlackApi,
        *,
        mode: str = "auto",
        clock: Clock = time.monotonic,
        min_interval: float = MIN_UPDATE_INTERVAL,
        stream_max_age: float | None = None,
    ) -> None:
        self.api = api
        self.mode = mode
        self.clock = clock
        self.min_interval = min_interval
        # Read when the factory is made (not when this module loads), so tests can lower it.
        self.stream_max_age = STREAM_MAX_AGE if stream_max_age is None else stream_max_age
        self._refused = ChannelSet(self.REFUSED_CAP)  # no native streams there
        self.no_status = ChannelSet(self.REFUSED_CAP)  # no loading states there
        self._tasks: dict[asyncio.Task[None], AnswerWriter] = {}

    def run(self, work: Coroutine[Any, Any, None], name: str, writer: AnswerWriter) -> asyncio.Task[None]:
        """A writer task, kept until it ends: it may outlive its answer's turn to stop a stream."""
        task = asyncio.create_task(work, name=name)
        self._tasks[task] = writer
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def close(self, grace: float) -> None:
        """At shutdown: give the writers still closing streams `grace` seconds, then cancel them. A writer
        whose answer was never finished (its turn ended without finish or abort) has nothing left to do."""
        if not self._tasks:
            return
        for task, writer in list(self._tasks.items()):
            if not writer.finishing:
                task.cancel()
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def new(
        self,
        team_id: str,
        channel: str,
        thread_ts: str,
        *,
        recipient_user_id: str,
        answer_id: int,
        reuse: Sequence[str] = (),
    ) -> AnswerWriter:
        """A writer for one answer; `reuse`: the messages of an earlier answer to re-write in place."""
        return AnswerWriter(self, team_id, channel, thread_ts, recipient_user_id, answer_id, reuse)

    def wants_native(self, team_id: str, channel: str) -> bool:
        """Native streaming where Slack allows it and its Tier 2 budget has room for a start and a stop."""
        if self.mode == "native":
            return True
        if self.mode != "auto" or (team_id, channel) in self._refused:
            return False
        return self.api.pacer(team_id).native_has_room()

    def refused(self, team_id: str, channel: str, error: str) -> None:
        if error not in CHANNEL_REFUSALS:
            return
        log.info("Slack refused native streaming in %s (%s); using chat.update there", channel, error)
        self._refused.add((team_id, channel))
