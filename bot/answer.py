"""One answer in the making: what the model said (for the history), the writer that shows it, and its stop.

The text kept here is what the store saves; the writer's is what Slack shows. They differ only by display
framing (a JSON answer's code fence) and, after a person stops a native stream in Slack, by what Slack never
showed: `keep_shown` trims the stored answer to it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.core.sse import Finish
from bot.slack.writers import Writer
from bot.storage import UNFINISHED, Status, Store, StoreUnavailable, Turn

log = logging.getLogger(__name__)

# How long a final save waits for a database that is out of reach (a restart, a fail-over) before giving up.
SAVE_PATIENCE = 60.0


class Stopped(Exception):
    """Someone pressed the answer's Stop button: its model stream was cancelled."""


class LeaseLost(Exception):
    """Another process took the answer over (this one's lease lapsed, e.g. while the database was out of reach):
    this one must show no more of it."""


class Answer:
    """One answer in the making: what the model said (for the history) and the writer that shows it."""

    def __init__(self, turn: Turn, writer: Writer, store: Store, asker: str) -> None:
        self.turn = turn
        self.writer = writer
        self.asker = asker
        self.text = ""
        self.shown_from = 0  # where the answer's text starts in what the writer shows (after a JSON fence)
        self.stopped_by: str | None = None  # who pressed Stop
        self.stream: asyncio.Task[Finish | None] | None = None  # the model stream, while it runs
        self.streamed = False  # the model stream is over: too late to stop
        self.lost = False  # the lease went to another process
        self._store = store
        self._saved: tuple[Status, str | None] | None = None  # the status and first message the store has

    def add(self, text: str) -> None:
        self.writer.append(text)  # raises when Slack broke the writer: that text was never shown
        self.text += text

    @property
    def stoppable(self) -> bool:
        """Not stopped yet, and its model stream not over (a stream task that just ended counts as over)."""
        over = self.streamed or (self.stream is not None and self.stream.done())
        return self.stopped_by is None and not over

    def stop(self, user_id: str) -> None:
        """Stop at once: the model request ends (no more tokens are paid for) and what was shown stays."""
        self.stopped_by = user_id
        if self.stream is not None:
            self.stream.cancel()

    def keep_shown(self) -> None:
        """After a stop in Slack: the stored answer is what Slack shows, not what the model sent after it."""
        self.text = self.text[: max(len(self.writer.raw) - self.shown_from, 0)]

    @property
    def unfinished_status(self) -> Status:
        # Text that never reached Slack (its first message was refused) is no partial answer.
        return Status.PARTIAL if self.text and self.writer.parts else Status.FAILED

    async def save(self, status: Status, **extra: Any) -> None:
        """Store the answer; a final status is retried while the database is out of reach (up to SAVE_PATIENCE).

        Raises `LeaseLost` when another process holds the answer now.
        """
        delay, waited = 0.25, 0.0
        while True:
            parts = self.writer.parts
            saved_as = (status, parts[0] if parts else None)
            try:
                if self._saved == saved_as and not extra:  # only the text and the messages grew
                    saved = await self._store.save_progress(self.turn.answer_id, text=self.text, slack_parts=parts)
                else:
                    saved = await self._store.save_answer(
                        self.turn.answer_id, text=self.text, status=status, slack_parts=parts, **extra
                    )
                break
            except StoreUnavailable:
                if status in UNFINISHED or waited >= SAVE_PATIENCE:
                    raise
                log.warning("the database is out of reach; answer %d is saved when it is back", self.turn.answer_id)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)
        if not saved:
            self.lost = True
            raise LeaseLost(f"answer {self.turn.answer_id} was taken over by another process")
        self._saved = saved_as

    async def progress(self) -> None:
        """Before each Slack update: the store holds at least what people can see.

        A database out of reach does not hold the answer up: the next save carries the text. An answer taken
        over by another process is not shown any further.
        """
        if self.lost:
            raise LeaseLost(f"answer {self.turn.answer_id} was taken over by another process")
        try:
            await self.save(Status.STREAMING)
        except StoreUnavailable as exc:
            log.warning("could not save answer %d as it grows: %s", self.turn.answer_id, exc)
