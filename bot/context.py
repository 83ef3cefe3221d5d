"""What the model reads for a turn: the thread as the store keeps it, with its speakers' names, within the
model's context window; and, where the bot is new to a thread, Slack's copy of it, read once.

Slack's thread history is limited (for apps outside the Marketplace, one read a minute of 15 messages), so it
is read once and stored: the bot's own store is the history from then on.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.core.backfill import earlier_messages
from bot.core.history import Prompt
from bot.core.params import ModelParams
from bot.core.prompt import ThreadMessage, draft_prompt, names_to_look_up
from bot.core.routing import Incoming, channel_type_of
from bot.ports import Model, SlackOut
from bot.slack.api import RateLimited, SlackCallError
from bot.storage import AnswerRef, NewMessage, Store, ThreadKey, Turn
from bot.tokens import TokenCounter
from bot.users import UserDirectory

log = logging.getLogger(__name__)


async def read_thread(out: SlackOut, key: ThreadKey) -> dict[str, Any]:
    """Slack's copy of a thread (`conversations.replies`), once; raises SlackCallError or RateLimited."""
    return await out.call(
        key.team_id,
        "conversations.replies",
        retry_rate_limited=False,  # a best-effort read: never worth a minute's wait
        channel=key.channel_id,
        ts=key.thread_ts,
        limit=100,
    )


async def asked(store: Store, ref: AnswerRef, user_id: str) -> Incoming | None:
    """The question a stored answer replies to, as the message that asked it (to answer it again, or to go on
    with it); None when the question was deleted in Slack. `user_id` stands in for an asker the store lacks."""
    stored = await store.history(ref.conversation.id, ref.user_ts)
    question = next((m.text for m in reversed(stored) if m.role == "user" and m.slack_ts == ref.user_ts), None)
    if question is None:
        return None
    key = ref.conversation.key
    return Incoming(
        team_id=key.team_id,
        channel_id=key.channel_id,
        ts=ref.user_ts,
        thread_ts=key.thread_ts,
        user_id=ref.asker or user_id,
        text=question,
        channel_type=channel_type_of(key.channel_id),
    )


class ThreadContext:
    """Builds each turn's prompt from the store, and backfills threads the bot joins late."""

    def __init__(
        self,
        *,
        store: Store,
        model: Model,
        out: SlackOut,
        tokens: TokenCounter,
        users: UserDirectory,
        context_tokens: int | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.out = out
        self.tokens = tokens
        self.users = users
        self._context_tokens = context_tokens

    async def prompt(self, turn: Turn, params: ModelParams, *, bot_user_id: str, bot_name: str) -> Prompt:
        """The turn's prompt: its thread up to its question, trimmed to the context window."""
        key = turn.conversation.key
        stored = await self.store.history(turn.conversation.id, turn.user_ts)
        messages = [ThreadMessage(m.id, m.role, m.text, m.slack_user, m.tokens) for m in stored]
        wanted = names_to_look_up(messages=messages, bot_user_id=bot_user_id)
        names = await self.users.names(key.team_id, wanted)
        draft = draft_prompt(
            messages=messages,
            names=names,
            bot_user_id=bot_user_id,
            bot_name=bot_name,
            system_prompt=turn.conversation.persona.system_prompt,
            params=params,
            context_tokens=self._context_tokens or await self.model.context_length(params.model or ""),
        )
        # Counted in bytes, or exactly in a worker thread when the prompt may not fit; exact counts are kept.
        assembly = await self.tokens.fit(draft)
        if assembly.counted:
            await self.store.record_tokens((m, assembly.counted[m.id]) for m in stored if m.id in assembly.counted)
        return assembly.prompt

    async def backfill(self, turn: Turn, *, before_ts: str, bot_user_id: str) -> None:
        """A mention inside a thread the bot wasn't in: store the messages that came before it, from Slack."""
        key = turn.conversation.key
        try:
            data = await read_thread(self.out, key)
        except (SlackCallError, RateLimited) as exc:
            log.info("no thread history from Slack for %s (%s); answering without it", key.thread_ts, exc)
            return
        earlier = earlier_messages(data, before_ts=before_ts, bot_user_id=bot_user_id)
        added = await self.store.add_context(
            turn.conversation.id, [NewMessage(m.role, m.text, m.ts, m.user) for m in earlier]
        )
        log.info("read %d earlier messages of thread %s from Slack", added, key.thread_ts)
