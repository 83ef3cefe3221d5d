"""One answer in the making: what the model said (for the history), the writer that shows it, and its stop.

The text kept here is what the store saves; the writer's is what Slack shows. They differ only by display
framing (a JSON answer's code fence) and, after a person stops a native stream in Slack, by what Slack never
showed: `keep_shown` trims the stored answer to it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core.sse import Finish
from bot.slack.writers import Writer
from bot.storage import Status, Store, Turn


class Stopped(Exception):
    """Someone pressed the answer's Stop button: its model stream was cancelled."""


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
        self._store = store

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
        await self._store.save_answer(
            self.turn.answer_id, text=self.text, status=status, slack_parts=self.writer.parts, **extra
        )

    async def progress(self) -> None:
        """After each Slack update: the store holds at least what people can see."""
        await self.save(Status.STREAMING)
