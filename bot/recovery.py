"""After a hard kill: answers the last process left in progress are marked interrupted, in Slack and in the
store, so no thread is left on a half-written message."""

from __future__ import annotations

import logging
from typing import Protocol

from bot.core.splitting import split_all
from bot.notes import RESTART_NOTE
from bot.slack.api import RateLimited, SlackCallError
from bot.slack.writers import with_notes
from bot.storage import Status, Store, ThreadKey

log = logging.getLogger(__name__)


class SlackOut(Protocol):
    async def post(self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None) -> object: ...

    async def update(self, team_id: str, channel: str, ts: str, text: str) -> None: ...


async def recover(store: Store, out: SlackOut) -> int:
    """Mark every answer left in progress as interrupted; returns how many there were."""
    unfinished = await store.unfinished_answers()
    for item in unfinished:
        status = Status.PARTIAL if item.text else Status.FAILED
        await store.save_answer(item.answer_id, text=item.text, status=status, slack_parts=item.slack_parts)
        try:
            await _show_interrupted(out, item.key, item.text, item.slack_parts)
        except (SlackCallError, RateLimited) as exc:
            log.warning("could not mark interrupted answer %d in Slack: %s", item.answer_id, exc)
    if unfinished:
        log.info("marked %d answers interrupted by the last shutdown", len(unfinished))
    return len(unfinished)


async def _show_interrupted(out: SlackOut, key: ThreadKey, text: str, parts: list[str]) -> None:
    rendered = split_all(with_notes(text, [RESTART_NOTE]))
    for i, part in enumerate(rendered):
        if i < len(parts):
            if i == len(parts) - 1 or i == len(rendered) - 1:
                await out.update(key.team_id, key.channel_id, parts[i], part.text)
        else:
            await out.post(key.team_id, key.channel_id, part.text, thread_ts=key.thread_ts)
