"""What the model reads for a turn: the thread as the store keeps it, with its speakers' names, within the
model's context window; and, where the bot is new to a thread, Slack's copy of it, read once.

Slack's thread history is limited (for apps outside the Marketplace, one read a minute of 15 messages), so it
is read once and stored: the bot's own store is the history from then on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.core.backfill import earlier_messages
from bot.core.history import Prompt
from bot.core.params import ModelParams
from bot.core.prompt import ThreadMessage, draft_prompt, names_to_look_up, prompt_budget
from bot.core.redact import Redactor
from bot.core.routing import Incoming, channel_type_of
from bot.ports import Model, SlackOut
from bot.slack.api import RateLimited, SlackCallError
from bot.storage import AnswerRef, NewMessage, Store, ThreadKey, Turn
from bot.tokens import TokenCounter
from bot.users import UserDirectory

if TYPE_CHECKING:
    from bot.files import FilesRead

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
    question = next((m for m in reversed(stored) if m.role == "user" and m.slack_ts == ref.user_ts), None)
    if question is None:
        return None
    key = ref.conversation.key
    return Incoming(
        team_id=key.team_id,
        channel_id=key.channel_id,
        ts=ref.user_ts,
        thread_ts=key.thread_ts,
        user_id=ref.asker or user_id,
        text=question.text,
        channel_type=channel_type_of(key.channel_id),
        files=question.files,
    )


# What a page of a PDF sent as a document is taken to cost in context tokens (text pages run 400–600).
DOCUMENT_PAGE_TOKENS = 600


@dataclass(frozen=True)
class FileReader:
    """Reads the files messages share (`bot.files`), with the bot's token and Slack's session."""

    session: aiohttp.ClientSession
    token: str
    api_url: str
    max_file_mb: float = 20.0  # MAX_FILE_MB
    documents: bool = True  # MISTRAL_DOCUMENTS

    async def read(self, files: Sequence[dict[str, Any]], *, text_budget: int) -> FilesRead:
        # Imported with the first file: Pillow and pypdf cost start-up time (0.3 s) and memory (9 MB) that a
        # bot nobody shares files with need not pay.
        from bot.files import FileLimits, read_files

        limits = FileLimits.from_settings(max_file_mb=self.max_file_mb, documents=self.documents)
        return await read_files(
            files,
            session=self.session,
            token=self.token,
            api_url=self.api_url,
            text_budget=text_budget,
            limits=limits,
        )

    async def read_again(
        self, files: Sequence[dict[str, Any]], *, text_budget: int
    ) -> tuple[list[dict[str, Any]], int]:
        """An earlier message's files for a later turn, from what `kept` stored: text from the store (a PDF
        as its text), images downloaded again (they are not kept). The chunks, and what the images cost."""
        from bot.files import SlackFile, text_chunk
        from bot.files.kinds import keeps_tail

        images = [f for f in files if f["read"].get("sent_as") == "image"]
        again: dict[str, list[dict[str, Any]]] = {}
        cost = 0
        if images:
            read = await self.read(images, text_budget=0)
            again = {o.file_id: list(o.chunks) for o in read.outcomes if o.sent_as == "image"}
            cost = read.image_tokens
        texts = [f for f in files if f["read"].get("text") and f["read"].get("sent_as") != "image"]
        limit = text_budget // max(len(texts), 1)
        chunks: list[dict[str, Any]] = []
        for f in files:
            file, stored = SlackFile.parse(f), f["read"]
            if file.id in again:
                chunks.extend(again[file.id])
            elif f in texts:
                label = "PDF's text" if file.mimetype == "application/pdf" else "file"
                sent = text_chunk(file.name, stored["text"], limit=limit, keep_tail=keeps_tail(file), label=label)
                if not sent.cut or sent.length <= limit:
                    chunks.append(sent.chunk)
        return chunks, cost


def kept(files: Sequence[dict[str, Any]], read: FilesRead) -> list[dict[str, Any]]:
    """The message's files with what was read of each, as the store keeps them for later turns."""
    return [{**f, "read": {"sent_as": o.sent_as, "text": o.text}} for f, o in zip(files, read.outcomes, strict=True)]


@dataclass(frozen=True)
class SentFiles:
    """The question's files, as this turn sent them: the notes for the person, the names of those sent as
    images or documents (a model that refuses them is named by them), and what REDACT took out of their text."""

    notes: list[str]
    media: list[str]
    withheld: Counter[str] = field(default_factory=Counter)


def redacted(read: FilesRead, redact: Redactor) -> tuple[FilesRead, Counter[str]]:
    """The files' text with REDACT's matches taken out, before it reaches the model or the store; and what was
    taken out of what the model reads. (Images cannot be redacted; PDFs go as text while REDACT is set.)"""
    withheld: Counter[str] = Counter()
    if not redact.active:
        return read, withheld

    def clean(chunk: dict[str, Any], counts: Counter[str] | None) -> dict[str, Any]:
        if chunk.get("type") != "text":
            return chunk
        text, found = redact.redact(str(chunk.get("text", "")))
        if counts is not None:
            counts.update(found)
        return {**chunk, "text": text}

    outcomes = [
        replace(o, text=redact.redact(o.text)[0] if o.text else o.text, chunks=tuple(clean(c, None) for c in o.chunks))
        for o in read.outcomes
    ]
    return replace(read, chunks=[clean(c, withheld) for c in read.chunks], outcomes=outcomes), withheld


def attachment_cost(read: FilesRead) -> int:
    """Context tokens of what the files send besides text: images, and PDFs sent as documents."""
    documents = sum((o.pages or 1) * DOCUMENT_PAGE_TOKENS for o in read.outcomes if o.sent_as == "document")
    return read.image_tokens + documents


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
        files: FileReader | None = None,
        redact: Redactor | None = None,
    ) -> None:
        self.redact = redact or Redactor.parse(None)
        self.store = store
        self.model = model
        self.out = out
        self.tokens = tokens
        self.users = users
        self.files = files
        self._context_tokens = context_tokens

    async def prompt(
        self, turn: Turn, params: ModelParams, *, bot_user_id: str, bot_name: str
    ) -> tuple[Prompt, SentFiles]:
        """The turn's prompt: its thread up to its question, trimmed to the context window, with the files its
        messages shared (read again from Slack for every turn that sends them); and what became of the
        question's own files."""
        key = turn.conversation.key
        stored = await self.store.history(turn.conversation.id, turn.user_ts)
        context_tokens = self._context_tokens or await self.model.context_length(params.model or "")
        # Each message's text files may take about a third of the prompt's budget (a token is 3–4 characters
        # of code or prose); older turns are dropped when the whole is over it.
        text_budget = prompt_budget(context_tokens=context_tokens, max_tokens=params.max_tokens)
        messages, sent = [], SentFiles([], [])
        for m in stored:
            message = ThreadMessage(m.id, m.role, m.text, m.slack_user, m.tokens)
            if m.files and m.role == "user" and self.files is not None:
                stored_reads = all("read" in f for f in m.files)
                if m.slack_ts == turn.user_ts or not stored_reads:
                    # The question's files are read in full (their notes are for this answer); the store keeps
                    # what was read, for the turns after it.
                    read, withheld = redacted(await self.files.read(m.files, text_budget=text_budget), self.redact)
                    chunks, cost = read.chunks, attachment_cost(read)
                    if not stored_reads:
                        await self.store.save_files(m.id, kept(m.files, read))
                    if m.slack_ts == turn.user_ts:
                        media = [o.name for o in read.outcomes if o.sent_as in ("image", "document")]
                        sent = SentFiles(read.notes, media, withheld)
                else:
                    chunks, cost = await self.files.read_again(m.files, text_budget=text_budget)
                message = replace(message, attachments=tuple(chunks), attachment_tokens=cost)
            messages.append(message)
        wanted = names_to_look_up(messages=messages, bot_user_id=bot_user_id)
        names = await self.users.names(key.team_id, wanted)
        draft = draft_prompt(
            messages=messages,
            names=names,
            bot_user_id=bot_user_id,
            bot_name=bot_name,
            system_prompt=turn.conversation.persona.system_prompt,
            params=params,
            context_tokens=context_tokens,
        )
        # Counted in bytes, or exactly in a worker thread when the prompt may not fit; exact counts are kept.
        assembly = await self.tokens.fit(draft)
        if assembly.counted:
            await self.store.record_tokens((m, assembly.counted[m.id]) for m in stored if m.id in assembly.counted)
        return assembly.prompt, sent

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
            turn.conversation.id, [NewMessage(m.role, self.redact.redact(m.text)[0], m.ts, m.user) for m in earlier]
        )
        log.info("read %d earlier messages of thread %s from Slack", added, key.thread_ts)
