"""What people (and the model) are told about shared files the bot could not read, or read only in part.

Each reason is a clause that completes "I skipped `name`: …"; the same clause tells the model, inside the
question, that a file was attached but not read, so it does not guess at its contents. Notes are Markdown, like
every text the bot posts; file names are shown as code, so no name can format, mention or link anything.
"""

from __future__ import annotations

from bot.files.download import DownloadError, DownloadProblem

NAME_LIMIT = 80

DELETED = "it was deleted"
HIDDEN = "it is hidden by this workspace's plan limits"
UNAVAILABLE = "Slack says it isn't available to me"
EXTERNAL = "it is stored outside Slack (a linked file), which I can't open"
NOT_TEXT = "it doesn't look like text"
EMPTY = "it is empty"
NO_ROOM = "there was no room left for it in the conversation"
PDF_NO_TEXT = "it has no text I can extract (a scan?), and reading PDFs as documents is turned off here"
PDF_TOO_BIG_NO_TEXT = "it is too large to send as a document, and it has no text I can extract"


def code(name: str) -> str:
    """A file name as inline code: backticks and line breaks replaced, long names shortened."""
    clean = " ".join(name.replace("`", "'").split())
    if len(clean) > NAME_LIMIT:
        clean = clean[: NAME_LIMIT - 1] + "…"
    return f"`{clean or 'file'}`"


def skipped(name: str, reason: str) -> str:
    return f"I skipped {code(name)}: {reason}."


def for_model(name: str, reason: str) -> str:
    return f"[The attached file {code(name)} was not read: {reason}.]"


def too_large(max_bytes: int) -> str:
    return f"it is over the {_megabytes(max_bytes)} limit for files"


def image_cap(count: int) -> str:
    return f"I look at no more than {count} images per message"


def download_reason(error: DownloadError, *, max_bytes: int) -> str:
    """Why a download failed, for the person: what happened and, where it helps, what to do."""
    match error.problem:
        case DownloadProblem.TOO_LARGE:
            return too_large(max_bytes)
        case DownloadProblem.NO_ACCESS:
            return (
                "I'm not allowed to download files here (the app needs the `files:read` scope: "
                "an admin can add it and reinstall the app)"
            )
        case DownloadProblem.DELETED:
            return DELETED
        case DownloadProblem.FOREIGN_HOST:
            return "it isn't on Slack's file servers, and I download files only from there"
        case DownloadProblem.NO_URL:
            return "Slack gave me no way to download it"
        case DownloadProblem.TIMEOUT:
            return "downloading it from Slack took too long (try again in a moment)"
        case DownloadProblem.NETWORK:
            return "downloading it from Slack failed (try again in a moment)"
    status = f" (HTTP {error.status})" if error.status else ""
    return f"Slack's file server answered with an error{status}; try again in a moment"


def cut(name: str, kept: int, total: int) -> str:
    return f"{code(name)} is long, so I read only part of it ({kept:,} of {total:,} characters)."


def pdf_as_text(name: str, why: str) -> str:
    return f"I read only the text of {code(name)}: {why}."


def first_frame(name: str) -> str:
    return f"{code(name)} is animated; I see only its first frame."


def _megabytes(count: int) -> str:
    mb = count / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 10 or mb == int(mb) else f"{mb:.1f} MB"
