"""What the bot keeps, and the one interface every storage backend implements.

SQLite is the backend today; a PostgreSQL backend for multi-replica deployments implements the same
`Store` protocol. Nothing outside `bot.storage` imports a database driver.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.core.personas import Persona


class Status(StrEnum):
    COMPLETE = "complete"  # a user message, or an answer that finished
    DELETED = "deleted"  # a user message deleted in Slack: never sent to the model again
    PENDING = "pending"  # an answer claimed but not yet shown
    STREAMING = "streaming"  # an answer being written
    PARTIAL = "partial"  # an answer cut short; what was shown is kept
    FAILED = "failed"  # no answer text: the thread shows why


UNFINISHED = (Status.PENDING, Status.STREAMING)


@dataclass(frozen=True)
class ThreadKey:
    team_id: str
    channel_id: str
    thread_ts: str


@dataclass(frozen=True)
class Conversation:
    id: int
    key: ThreadKey
    persona: Persona


@dataclass(frozen=True)
class NewMessage:
    role: str
    text: str
    slack_ts: str
    slack_user: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    text: str
    slack_user: str | None
    slack_ts: str | None
    status: Status
    tokens: int | None = None  # the exact count of the message as the model reads it, once counted


@dataclass(frozen=True)
class Turn:
    """A claimed question: the stored user message and the answer row that will hold the reply."""

    conversation: Conversation
    user_message_id: int
    answer_id: int
    user_ts: str
    created_conversation: bool


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class UnfinishedAnswer:
    answer_id: int
    key: ThreadKey
    text: str
    slack_parts: list[str]


class Store(Protocol):
    async def close(self) -> None: ...

    async def get_conversation(self, key: ThreadKey) -> Conversation | None: ...

    async def claim_turn(self, key: ThreadKey, persona: Persona, message: NewMessage) -> Turn | None:
        """Store a user message and an empty answer for it, creating the conversation if needed.

        Returns None when this Slack message was claimed before: the caller must not answer it again.
        """
        ...

    async def add_context(self, conversation_id: int, messages: list[NewMessage]) -> int:
        """Backfill earlier thread messages (already stored ones are skipped); returns how many were new."""
        ...

    async def history(self, conversation_id: int, up_to_ts: str) -> list[StoredMessage]:
        """The turns worth sending to the model, oldest first, up to and including `up_to_ts`."""
        ...

    async def record_tokens(self, counts: Iterable[tuple[StoredMessage, int]]) -> None:
        """Keep exact token counts of messages as they were read; a message whose text changed since keeps none.

        Any change to a message's text forgets its count.
        """
        ...

    async def save_answer(
        self,
        answer_id: int,
        *,
        text: str,
        status: Status,
        slack_parts: list[str],
        finish_reason: str | None = None,
        usage: Usage | None = None,
    ) -> None: ...

    async def edit_message(self, team_id: str, channel_id: str, slack_ts: str, text: str) -> bool: ...

    async def delete_message(self, team_id: str, channel_id: str, slack_ts: str) -> bool: ...

    async def unfinished_answers(self) -> list[UnfinishedAnswer]: ...

    async def get_channel_persona(self, team_id: str, channel_id: str) -> Persona | None: ...

    async def set_channel_persona(
        self, team_id: str, channel_id: str, persona: Persona | None, updated_by: str
    ) -> None:
        """Set the channel's persona; None returns the channel to the default."""
        ...
