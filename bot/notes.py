"""What people read when the bot cannot simply answer: fixed, helpful texts (the details go to the log)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.splitting import ends_in_code
from bot.mistral import ErrorKind

HELP = (
    "Hi! Ask me anything: mention me with your question, or write to me in a DM. I answer in a thread, "
    "and I follow up on every reply in that thread without another mention. "
    "`/ask <question>` asks from anywhere; `/persona` shows or changes how I answer in this channel."
)

TRY_AGAIN = "Press Try again, or reply in the thread."
NOTES: dict[ErrorKind, str] = {
    ErrorKind.AUTH: "I couldn't reach the model: the Mistral API refused the bot's key. An admin should "
    "check `MISTRAL_API_KEY`.",
    ErrorKind.MODEL: "I couldn't answer: the model configured for this channel doesn't exist or was retired. "
    "An admin should check `MISTRAL_MODEL` or this channel's `/persona`.",
    ErrorKind.REFUSED: "The Mistral API refused this request (it may be too long, or a setting is invalid). "
    "Try a shorter question or `/ask` in a new thread; an admin can find details in the bot's log.",
    ErrorKind.RATE_LIMITED: "The Mistral API is rate-limiting the bot and didn't recover in time. "
    "Try again in a minute.",
    ErrorKind.UNAVAILABLE: "The Mistral API is unavailable right now, even after retrying. Try again in a minute.",
    ErrorKind.TIMEOUT: "The model stopped responding, so the answer is cut short. " + TRY_AGAIN,
    ErrorKind.INTERRUPTED: "The model's stream broke off, so the answer is cut short. " + TRY_AGAIN,
}
# Failures worth the "Try again" button: passing ones. A wrong key, model or request fails the same way again.
RETRYABLE = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT, ErrorKind.INTERRUPTED})
LENGTH_NOTE = "The answer hit the length limit (`max_tokens`) and stops here."
RESTART_NOTE = "The bot was restarted while writing this. " + TRY_AGAIN
SHUTDOWN_NOTE = "The bot is restarting and couldn't finish this. " + TRY_AGAIN
UNEXPECTED_NOTE = "Something went wrong on my side, so I couldn't answer. " + TRY_AGAIN
# Why the bot cannot write where it was asked, as the person is told.
CANNOT_POST = {
    "not_in_channel": "I'm not a member of that channel; invite me with `/invite` and ask again.",
    "channel_not_found": "I can't see that channel; invite me with `/invite` and ask again.",
    "is_archived": "that channel is archived.",
    "restricted_action_thread_locked": "that thread is locked.",
    "restricted_action": "posting there is restricted.",
}
TRUNCATED_NOTE = "Your message was too long for the model, so only its beginning was read."

RESTARTING = "I'm restarting right now; please try again in a moment."
# Stopping, retrying and regenerating (buttons on answers, and Slack's own stop on native streams)
STOPPED_IN_SLACK = "Stopped."
ONLY_PARTICIPANTS = "Only people in this conversation can do that."
ONLY_LATEST = "Only the latest answer in a thread can be regenerated or retried; ask again instead."
ALREADY_FINISHED = "That answer has already finished."
ALREADY_RUNNING = "That answer is already being written again."
FEEDBACK_THANKS = {"good": "Thanks for the feedback! 👍", "bad": "Thanks for the feedback; I'll note it. 👎"}
STALE_ACTION = "That button belongs to an answer I no longer know about."


def stopped_by(name: str | None) -> str:
    """The note under an answer someone stopped: named, not mentioned (a mention would notify them), and
    nameless when Slack's own stop control did it (Slack says nobody)."""
    return f"Stopped by @{name}." if name else STOPPED_IN_SLACK


def files_refused(names: list[str]) -> str:
    """The model refused a request that carried images or documents: most likely it takes none."""
    listed = ", ".join(f"`{name}`" for name in names)
    return (
        f"The model refused this request with {listed}: it may not read images or documents. "
        "Ask again without them, or an admin can choose a model that does."
    )


def with_notes(text: str, notes: Sequence[str]) -> str:
    """An answer followed by its notes (interrupted, cut short...), each an italic warning line.

    An answer cut off inside a code block has the block closed first, so its notes read as notes, not code.
    """
    if notes and ends_in_code(text):
        text += "\n```"
    return "\n\n".join([text] * bool(text) + [f"_⚠️ {note}_" for note in notes])
