"""Buttons on answers (block actions): Stop, feedback, Try again and Regenerate.

Each is acknowledged at once; what the click did, or why it did nothing, goes to the person privately through
the payload's `response_url`. Payloads are read defensively: a forged or stale one gets a quiet note or
nothing (`bot.controls` checks the answer against the store).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot.controls import record_feedback, rerun_answer, stop_answer
from bot.conversation import Conversations
from bot.listeners.events import identity_of
from bot.slack.blocks import FEEDBACK_ACTION, REGENERATE_ACTION, RETRY_ACTION, STOP_ACTION, parse_action

log = logging.getLogger(__name__)


def register(app: AsyncApp, conversations: Conversations) -> None:
    def on(action_id: str, handle: Callable[..., Awaitable[str | None]]) -> None:
        async def listener(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
        ) -> None:
            await ack()
            clicked = _clicked(body, action_id)
            if clicked is None:
                log.info("ignored a %s payload without a usable action", action_id)
                return
            team_id, user_id, value = clicked
            parsed = parse_action(action_id, value)  # the value must be one this action's button carries
            if parsed is None:
                log.info("ignored a %s click with a value that is not ours", action_id)
                return
            kind, answer_id = parsed

            async def run() -> None:
                note = await handle(team_id=team_id, user_id=user_id, answer_id=answer_id, kind=kind, context=context)
                if note:
                    await tell(respond, note)

            # Slack's acknowledgement goes when the listener returns (process_before_response): not after the
            # store and response_url round trips.
            conversations.spawn(run(), f"{action_id}-{answer_id}")

        app.action(action_id)(listener)

    async def stop(*, team_id: str, user_id: str, answer_id: int, **_: Any) -> str | None:
        return await stop_answer(conversations, team_id=team_id, user_id=user_id, answer_id=answer_id)

    async def feedback(*, team_id: str, user_id: str, answer_id: int, kind: str, **_: Any) -> str | None:
        return await record_feedback(conversations, team_id=team_id, user_id=user_id, answer_id=answer_id, value=kind)

    async def rerun(*, team_id: str, user_id: str, answer_id: int, context: AsyncBoltContext, **_: Any) -> str | None:
        return await rerun_answer(
            conversations, team_id=team_id, user_id=user_id, answer_id=answer_id, identity=identity_of(context)
        )

    on(STOP_ACTION, stop)
    on(FEEDBACK_ACTION, feedback)
    on(RETRY_ACTION, rerun)
    on(REGENERATE_ACTION, rerun)


def _clicked(body: dict[str, Any], action_id: str) -> tuple[str, str, str] | None:
    """(team, user, value) of the click on `action_id` in a block_actions payload; None if it has none."""
    team, user, actions = body.get("team"), body.get("user"), body.get("actions")
    if not (isinstance(team, dict) and isinstance(user, dict) and isinstance(actions, list)):
        return None
    team_id, user_id = team.get("id"), user.get("id")
    if not (isinstance(team_id, str) and team_id and isinstance(user_id, str) and user_id):
        return None
    for action in actions:
        if isinstance(action, dict) and action.get("action_id") == action_id and isinstance(action.get("value"), str):
            return team_id, user_id, action["value"]
    return None


async def tell(respond: AsyncRespond | None, note: str) -> None:
    if respond is None:  # no response_url in the payload: nowhere private to say it
        return
    try:
        await respond(text=note, response_type="ephemeral", replace_original=False)
    except Exception as exc:  # a note is a courtesy: its failure must not turn into an error for Slack
        log.info("could not send a private note through response_url: %r", exc)
