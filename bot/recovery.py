"""After a hard kill: answers the last process left in progress are marked interrupted, in Slack and in the
store, so no thread is left on a half-written message."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from bot.core.splitting import split_all
from bot.notes import RESTART_NOTE
from bot.slack.api import RateLimited, SlackCallError
from bot.slack.blocks import fallback_text, final_controls, message_blocks
from bot.slack.writers import with_notes
from bot.storage import Status, Store, ThreadKey, UnfinishedAnswer

log = logging.getLogger(__name__)


class SlackOut(Protocol):
    async def call(self, team_id: str, method: str, **kwargs: Any) -> dict[str, Any]: ...

    async def post(
        self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None, **extra: Any
    ) -> object: ...

    async def update(
        self, team_id: str, channel: str, ts: str, text: str, *, blocks: Sequence[dict[str, Any]] = ()
    ) -> None: ...


async def recover(store: Store, out: SlackOut) -> int:
    """Mark every answer left in progress as interrupted; returns how many there were."""
    unfinished = await store.unfinished_answers()
    for item in unfinished:
        status = Status.PARTIAL if item.text else Status.FAILED
        await store.save_answer(item.answer_id, text=item.text, status=status, slack_parts=item.slack_parts)
        try:
            await _show_interrupted(out, item)
        except (SlackCallError, RateLimited) as exc:
            log.warning("could not mark interrupted answer %d in Slack: %s", item.answer_id, exc)
    if unfinished:
        log.info("marked %d answers interrupted by the last shutdown", len(unfinished))
    return len(unfinished)


async def _show_interrupted(out: SlackOut, item: UnfinishedAnswer) -> None:
    """The note and its Try again button under the text the answer had.

    An answer of one message is rewritten whole (its cursor goes). A longer one keeps its messages as they are:
    where the last process cut them (a native stream holds far more than a chat.update message) is not
    stored, so re-cutting could show text twice. Its note comes as a message of its own, after any stream
    the last process left open is stopped.
    """
    key, parts = item.key, item.slack_parts
    controls = final_controls(item.answer_id, answered=bool(item.text), retry=True)
    rendered = split_all(with_notes(item.text, [RESTART_NOTE]))
    if len(parts) == 1 and len(rendered) == 1:
        text = rendered[0].text
        await _update(out, key, parts[0], fallback_text(text), message_blocks(text, controls))
        return
    if parts:
        try:
            await out.call(key.team_id, "chat.stopStream", channel=key.channel_id, ts=parts[-1])
        except (SlackCallError, RateLimited):
            pass  # not a stream, or one Slack closed already
    note = with_notes("", [RESTART_NOTE])
    await out.post(key.team_id, key.channel_id, note, thread_ts=key.thread_ts, blocks=message_blocks(note, controls))


async def _update(out: SlackOut, key: ThreadKey, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
    try:
        await out.update(key.team_id, key.channel_id, ts, text, blocks=blocks)
    except SlackCallError as exc:
        if exc.error != "streaming_state_conflict":
            raise
        # A native stream the last process left open: Slack edits it only once it is stopped.
        await out.call(key.team_id, "chat.stopStream", channel=key.channel_id, ts=ts)
        await out.update(key.team_id, key.channel_id, ts, text, blocks=blocks)
