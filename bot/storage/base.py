"""What the bot keeps, and the one interface every storage backend implements.

SQLite is the default backend, for one process; PostgreSQL (`bot.storage.postgres`), for several replicas,
implements the same `Store` protocol. Nothing outside `bot.storage` imports a database driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bot.core.personas import Persona
from bot.core.usage_report import UsageBy, UsageRow


class Status(StrEnum):
    COMPLETE = "complete"  # a user message, or an answer that finished
    DELETED = "deleted"  # a user message deleted in Slack: never sent to the model again
    PENDING = "pending"  # an answer claimed but not yet shown
    STREAMING = "streaming"  # an answer being written
    PARTIAL = "partial"  # an answer cut short; what was shown is kept
    FAILED = "failed"  # no answer text: the thread shows why


UNFINISHED = (Status.PENDING, Status.STREAMING)

# How long an answer's lease lasts unless renewed: a process that dies holds its answers no longer than this.
LEASE_SECONDS = 15.0


class StoreError(Exception):
    """The store cannot be opened, and the bot must not start; the message is one line that says why.

    It names DATABASE_URL where that helps, never the URL itself (it may hold a password).
    """


class StoreUnavailable(StoreError):
    """The database cannot be reached (or refuses the connection), at start-up or for a while later."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer version of the bot: this one does not know its schema."""


# What a person may say about an answer (the feedback buttons).
FEEDBACK_VALUES = ("good", "bad")


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
    files: tuple[dict[str, Any], ...] = ()  # the Slack file objects it shares (the fields `bot.files` reads)


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    text: str
    slack_user: str | None
    slack_ts: str | None
    status: Status
    tokens: int | None = None  # the exact count of the message's text as the model reads it, once counted
    files: tuple[dict[str, Any], ...] = ()  # the Slack files it shared: read again for every turn that sends it


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
    cached_tokens: int = 0  # of prompt_tokens, served by the model's prompt cache (kept in the usage table)


@dataclass(frozen=True)
class UnfinishedAnswer:
    answer_id: int
    key: ThreadKey
    text: str
    slack_parts: list[str]


@dataclass(frozen=True)
class FeedbackCount:
    """Ratings of the answers given in one channel under one persona (`persona` None: the default one)."""

    channel_id: str
    persona: str | None
    good: int
    bad: int


@dataclass(frozen=True)
class AnswerRef:
    """What a button on an answer points at: enough to check who may act on it and to re-run its turn."""

    answer_id: int
    conversation: Conversation
    user_message_id: int
    user_ts: str
    asker: str | None
    status: Status
    text: str
    slack_parts: list[str]
    latest: bool  # no later question in the thread: re-running it rewrites no answer anything depends on
    asked_at: float = 0.0  # when the question was claimed (seconds since the epoch)


@dataclass(frozen=True)
class ConversationSummary:
    """One line of a person's recent conversations on the Home tab."""

    key: ThreadKey
    first_question: str
    last_activity: float


@dataclass(frozen=True)
class ChannelUse:
    """A channel the bot works in; `persona` is the stored channel persona, None where the default applies."""

    channel_id: str
    persona: Persona | None
    last_activity: float


@dataclass(frozen=True)
class UsageRecord:
    """One model call's tokens and cost, kept apart from the messages so forgetting them keeps the figures."""

    team_id: str
    channel_id: str
    user_id: str | None  # who asked
    answer_id: int | None
    model: str
    persona: str | None  # persona name, None = the default
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost: float  # in the price table's currency
    at: float  # seconds since the epoch




class Store(Protocol):
    owner: str  # this process, as the holder of the leases of the answers it writes
    lease_seconds: float
    shared: bool  # other processes may use the database at the same time (PostgreSQL), not only this one

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the database cannot answer now (health checks)."""
        ...

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
    ) -> bool:
        """Save an answer and extend its lease while it is unfinished.

        False, and nothing saved, when another process holds the answer's lease now (it took the answer over
        after this one's lease lapsed): the caller must stop writing it.
        """
        ...

    async def save_progress(self, answer_id: int, *, text: str, slack_parts: list[str]) -> bool:
        """`save_answer` of an answer still streaming whose status and first message (`slack_parts[0]`) the store
        has already: the save before each Slack update, and the cheapest write the store has. It leaves
        `updated_at` as the last full save set it (a change of status or of first message); False as for
        `save_answer`."""
        ...

    async def save_files(self, message_id: int, files: Sequence[dict[str, Any]]) -> None:
        """Keep the message's files with what was read of each (`read`), for the turns after it."""
        ...

    async def edit_message(self, team_id: str, channel_id: str, slack_ts: str, text: str) -> bool: ...

    async def delete_message(self, team_id: str, channel_id: str, slack_ts: str) -> bool: ...

    async def unfinished_answers(self) -> list[UnfinishedAnswer]: ...

    # leases: answers in flight, and taking over those of a process that died ---------------------------

    async def renew_leases(self, answer_ids: Iterable[int]) -> set[int]:
        """Extend the leases this process holds on `answer_ids`; returns the ids it still holds."""
        ...

    async def release_leases(self, answer_ids: Iterable[int]) -> None:
        """Let the leases go at once (a graceful stop), so another process takes the answers over now."""
        ...

    async def take_lapsed(self, limit: int = 20) -> list[AnswerRef]:
        """Lease to this process up to `limit` unfinished answers whose lease lapsed; each is taken by one process.

        An SQLite database serves one process, so every answer another process left unfinished counts as
        lapsed there; PostgreSQL waits for the lease to run out. This process's own answers count too once
        their lease lapsed (one it lost track of); the caller skips those it is still writing.
        """
        ...

    async def earlier_unfinished(self, conversation_id: int, user_ts: str) -> bool:
        """Whether an answer to an earlier question of the conversation is still being written (anywhere)."""
        ...

    async def get_channel_persona(self, team_id: str, channel_id: str) -> Persona | None: ...

    async def set_channel_persona(
        self, team_id: str, channel_id: str, persona: Persona | None, updated_by: str
    ) -> None:
        """Set the channel's persona; None returns the channel to the default."""
        ...

    # feedback ------------------------------------------------------------------------------------------

    async def record_feedback(self, answer_id: int, user_id: str, value: str) -> bool:
        """Keep one person's rating of an answer; a second click replaces the first (value and time).

        False, and nothing stored, when no answer has that id or `value` is not one of FEEDBACK_VALUES.
        """
        ...

    async def feedback_counts(self, team_id: str) -> list[FeedbackCount]:
        """A workspace's ratings per channel and persona name, so admins see which persona serves where."""
        ...

    async def feedback_of(self, answer_id: int) -> dict[str, str]:
        """The ratings of one answer, user id → value."""
        ...

    # buttons on answers ----------------------------------------------------------------------------------

    async def answer_ref(self, answer_id: int) -> AnswerRef | None:
        """The answer an interactive payload names, with its question and thread; None if there is no such answer.

        Payloads come from Slack and may name an id that was never an answer: callers must check for None.
        """
        ...

    async def is_participant(self, conversation_id: int, user_id: str) -> bool:
        """Whether the person wrote in the conversation (a message not deleted), so may act on its answers."""
        ...

    async def restart_answer(self, answer_id: int) -> Turn | None:
        """Empty an answer so its turn runs again in place (Retry, Regenerate); the Slack messages are kept.

        Atomic: of two clicks at once, one gets the Turn and the other None. None too when the answer is
        being written, is not the latest of its thread (a later answer was built on it), its question was
        deleted, or there is no such answer. Feedback on it is dropped: it rated a text that is gone.
        """
        ...

    # the Home tab ------------------------------------------------------------------------------------------

    async def recent_conversations(self, team_id: str, user_id: str, limit: int = 10) -> list[ConversationSummary]:
        """The conversations the person wrote in, most recent activity first, each with its opening question."""
        ...

    async def channels_in_use(self, team_id: str, limit: int = 50) -> list[ChannelUse]:
        """Channels with a conversation or a stored persona, most recent first; the caller applies catalog defaults."""
        ...

    # usage, quotas and admin notices ---------------------------------------------------------------------------

    async def record_usage(self, record: UsageRecord) -> None:
        """Keep one model call's tokens and cost."""
        ...

    async def usage_by(
        self,
        by: UsageBy,
        *,
        since: float,
        team_id: str | None = None,
        user_id: str | None = None,
        channel_id: str | None = None,
        limit: int | None = None,
    ) -> list[UsageRow]:
        """Usage recorded at or after `since`, summed per `by`, for the given ids (team None: every workspace).

        Ordered by cost, then tokens, most first, then by key (None last); at most `limit` rows.
        """
        ...

    async def usage_total(
        self, *, since: float, team_id: str | None = None, user_id: str | None = None, channel_id: str | None = None
    ) -> UsageRow:
        """Usage recorded at or after `since` for the given ids, summed (key None; zeros when there is none)."""
        ...

    async def claim_notice(self, team_id: str, kind: str, period: str) -> bool:
        """True exactly once per (team, kind, period), across every process: the one that should send the notice."""
        ...

    # retention and data requests ------------------------------------------------------------------------------

    async def forget_before(self, cutoff: float) -> int:
        """Retention: delete the messages last changed before `cutoff`, with their feedback; how many went.

        Unfinished answers stay, and so does a question while an answer to it stays. Conversations stay (a
        follow-up in the thread is still answered) and so does usage.
        """
        ...

    async def forget_user(self, user_id: str, *, team_id: str | None = None) -> int:
        """A data request: delete the person's messages, the answers to them and their feedback, and the ratings
        the person gave; usage keeps its figures without the person's id. Returns how many messages went.
        """
        ...

    async def forget_channel(self, channel_id: str, *, team_id: str | None = None) -> int:
        """Delete the channel's conversations, their messages and feedback, and its stored persona; how many
        messages went. Usage keeps its figures and the channel id (not personal data: budgets still count it).
        """
        ...
