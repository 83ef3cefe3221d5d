"""What a conversation needs from the world, as small protocols: the model, Slack's Web API, and writers.

The real ones are `bot.mistral.MistralClient`, `bot.slack.api.SlackApi` and `bot.slack.writers.Writers`;
tests hand in small fakes, so a turn's edge cases run in milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from bot.core.sse import Delta, Finish
from bot.mistral import RetryHook
from bot.slack.writers import Writer


class Model(Protocol):
    """The model API, as a turn uses it (`bot.mistral.MistralClient`)."""

    def stream(self, body: dict[str, Any], on_retry: RetryHook | None = None) -> AsyncIterator[Delta | Finish]: ...

    async def context_length(self, model: str) -> int: ...


class SlackOut(Protocol):
    """Slack's Web API, as a turn uses it (`bot.slack.api.SlackApi`)."""

    async def call(self, team_id: str, method: str, **kwargs: Any) -> dict[str, Any]: ...

    async def post(
        self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None, **extra: Any
    ) -> dict[str, Any]: ...

    async def update(self, team_id: str, channel: str, ts: str, text: str) -> None: ...

    async def ephemeral(
        self, team_id: str, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> bool: ...


class WriterFactory(Protocol):
    """Makes the writer that shows one answer (`bot.slack.writers.Writers`)."""

    def new(
        self,
        team_id: str,
        channel: str,
        thread_ts: str,
        *,
        recipient_user_id: str,
        answer_id: int,
        reuse: Sequence[str] = (),
    ) -> Writer: ...

    async def close(self, grace: float) -> None:
        """Let writers that still close streams finish for `grace` seconds, then cancel them."""
        ...
