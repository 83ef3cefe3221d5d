"""An interrupted answer that cannot be continued (`bot.takeover` found it too old) is marked interrupted, in
Slack and in the store, so no thread is left on a half-written message."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from bot.core.splitting import split_all
from bot.notes import RESTART_NOTE, with_notes
from bot.slack.api import RateLimited, SlackCallError
from bot.slack.blocks import fallback_text, final_controls, message_blocks
from bot.storage import AnswerRef, Status, Store, ThreadKey

log = logging.getLogger(__name__)


class SlackOut(Protocol):
    async def call(self, team_id: str, method: str, **kwargs: Any) -> dict[str, Any]: ...

    async def post(
        self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None, **extra: Any
    ) -> object: ...

    async def update(
        self, team_id: str, channel: str, ts: str, text: str, *, blocks: Sequence[dict[str, Any]] = ()
    ) -> None: ...


async def mark_interrupted(store: Store, out: SlackOut, ref: AnswerRef) -> None:
    """Keep what the answer had (partial, or failed if nothing) and say in the thread that it was interrupted."""
    status = Status.PARTIAL if ref.text else Status.FAILED
    await store.save_answer(ref.answer_id, text=ref.text, status=status, slack_parts=ref.slack_parts)
    try:
        await _show_interrupted(out, ref)
    except (SlackCallError, RateLimited) as exc:
        log.warning("could not mark interrupted answer %d in Slack: %s", ref.answer_id, exc)


async def _show_interrupted(out: SlackOut, item: AnswerRef) -> None:
    """The note and its Try again button under the text the answer had.

    An answer of one message is rewritten whole (its cursor goes). A longer one keeps its messages as they are:
    where the last process cut them (a native stream holds far more than a chat.update message) is not
    stored, so re-cutting could show text twice. Its note comes as a message of its own, after any stream
    the last process left open is stopped.
    """
    key, parts = item.conversation.key, item.slack_parts
    controls = final_controls(item.answer_id, answered=bool(item.text), retry=True)
    rendered = split_all(with_notes(item.text, [RESTART_NOTE]))
    if len(parts) == 1 and len(rendered) == 1:
        text = rendered[0].text
        await _update(out, key, parts[0], fallback_text(text), message_blocks(text, controls))
        return
    if parts:
        await stop_stream_left_open(out, key, parts[-1])
    note = with_notes("", [RESTART_NOTE])
    await out.post(key.team_id, key.channel_id, note, thread_ts=key.thread_ts, blocks=message_blocks(note, controls))


async def stop_stream_left_open(out: SlackOut, key: ThreadKey, ts: str) -> None:
    """Stop the native stream a process that died may have left open in `ts`: Slack edits or deletes a message
    only once its stream is stopped. Best effort: most messages are no stream, or one Slack closed already."""
    try:
        await out.call(key.team_id, "chat.stopStream", channel=key.channel_id, ts=ts)
    except (SlackCallError, RateLimited):
        pass


async def _update(out: SlackOut, key: ThreadKey, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
    try:
        await out.update(key.team_id, key.channel_id, ts, text, blocks=blocks)
    except SlackCallError as exc:
        if exc.error != "streaming_state_conflict":
            raise
        # A native stream the last process left open: Slack edits it only once it is stopped.
        await out.call(key.team_id, "chat.stopStream", channel=key.channel_id, ts=ts)
        await out.update(key.team_id, key.channel_id, ts, text, blocks=blocks)
