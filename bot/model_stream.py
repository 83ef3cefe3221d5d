"""The model's stream into an answer: one request, its deltas shown as they come, Stop honoured.

The stream runs as a task of its own (`Answer.stream`), which Stop cancels without cancelling the turn. An
assistant `prefix` is shown once whether or not the model echoes it; an interrupted answer taken over from
another process (`resume`) was shown and stored already, so only what the model adds after it is added.
"""

from __future__ import annotations

import asyncio

from bot.answer import Answer, Stopped
from bot.core.history import Prompt
from bot.core.params import ModelParams, request_body
from bot.core.prefix import PrefixedAnswer
from bot.core.sse import Delta, Finish
from bot.mistral import ErrorKind, ModelError
from bot.ports import Model

JSON_FENCE = "```\n"  # a JSON answer is shown as a code block, and stored as the bare JSON


async def stream_answer(
    model: Model, prompt: Prompt, params: ModelParams, answer: Answer, *, resume: str, total_timeout: float
) -> Finish | None:
    """Stream the model's answer into `answer`; raises `Stopped` when a person stopped it, `ModelError` when
    the model failed. Returns the finish event (reason and usage), if the model sent one."""
    if answer.stopped_by is not None:
        raise Stopped  # pressed before the stream began
    answer.stream = asyncio.ensure_future(_stream(model, prompt, params, answer, resume, total_timeout))
    try:
        return await answer.stream
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if answer.stopped_by is not None and not (task is not None and task.cancelling()):
            raise Stopped from None
        raise  # the turn itself is cancelled (shutdown): the stream went with it
    finally:
        answer.stream = None
        answer.streamed = True


async def _stream(
    model: Model, prompt: Prompt, params: ModelParams, answer: Answer, resume: str, total_timeout: float
) -> Finish | None:
    # The conversation's id keys Mistral's prompt cache: each turn of a thread resends the history before it.
    body = request_body(params, prompt.messages, prompt_cache_key=str(answer.turn.conversation.id))
    prefixed = PrefixedAnswer(params.prefix)
    known = len(resume)  # the model's text starts with it: not added again
    if params.json_answers:
        if not resume:
            answer.writer.append(JSON_FENCE)
        answer.shown_from = len(JSON_FENCE)

    def add(text: str) -> None:
        nonlocal known
        skip = min(known, len(text))
        known -= skip
        answer.add(text[skip:])

    async def on_retry(exc: ModelError, attempt: int, delay: float) -> None:
        answer.writer.set_status(f"_The model is busy; trying again in {delay:.0f}s (attempt {attempt + 1})…_")

    finish: Finish | None = None
    try:
        async with asyncio.timeout(total_timeout):
            async for item in model.stream(body, on_retry=on_retry):
                if isinstance(item, Delta):
                    add(prefixed.feed(item.text))
                else:
                    finish = item
    except TimeoutError:
        raise ModelError(ErrorKind.TIMEOUT, f"no complete answer within {total_timeout:g}s") from None
    add(prefixed.flush())
    if params.json_answers:
        answer.writer.append("\n```")
    return finish
