"""Downloading a shared file from Slack: with the bot token, from Slack's hosts only, under a size cap.

The token goes only to Slack's file hosts (`files.slack.com`, `*.slack.com`, `*.slack-edge.com`, over HTTPS)
or to the origin of the configured Web API base (where a proxy or a test double serves files too). Redirects
are followed by hand so that each hop is checked before the token is sent to it. The size cap is enforced
three times: Slack's `size` before any request, `Content-Length` before the body, and a byte count while
reading, so an oversized file is never read in full (nor a lying or compressed one).

Slack answers a download without a valid token, or one without `files:read`, with HTTP 200 and an HTML
sign-in page: an HTML body for a file that is not HTML means the bot lacks access.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import aiohttp
from yarl import URL

from bot.files.kinds import SlackFile

SLACK_FILE_DOMAINS = ("slack.com", "slack-edge.com")  # and their subdomains, HTTPS only
MAX_REDIRECTS = 3
READ_PIECE = 64 * 1024
# Connecting and each read are short; the whole download may take a while (20 MB on a slow link).
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10, sock_read=30)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


class DownloadProblem(StrEnum):
    NO_URL = "no_url"  # the file object has no private URL (and files.info gave none)
    FOREIGN_HOST = "foreign_host"  # the URL (or a redirect) leaves Slack's file hosts
    TOO_LARGE = "too_large"
    NO_ACCESS = "no_access"  # a sign-in page, 401/403, or files.info refusing the token's scopes
    DELETED = "deleted"  # 404/410, or files.info: file_not_found / file_deleted
    HTTP_ERROR = "http_error"  # another status (5xx…)
    NETWORK = "network"
    TIMEOUT = "timeout"


class DownloadError(Exception):
    """Why a file could not be downloaded; `detail` is for the log and never holds the token."""

    def __init__(self, problem: DownloadProblem, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(f"{problem}: {detail}" if detail else str(problem))
        self.problem = problem
        self.detail = detail
        self.status = status


def allowed_url(url: str, *, api_url: str) -> URL | None:
    """`url` parsed, when the bot may send its token there: Slack's file hosts, or the Web API base's origin."""
    try:
        parsed = URL(url)
        base = URL(api_url)
    except (ValueError, TypeError):
        return None
    if not parsed.is_absolute() or parsed.user is not None or parsed.password is not None:
        return None  # `https://files.slack.com@evil.example/` names evil.example: refuse any user info
    host = (parsed.host or "").lower().rstrip(".")
    if parsed.scheme == "https" and parsed.port == 443:
        if any(host == domain or host.endswith("." + domain) for domain in SLACK_FILE_DOMAINS):
            return parsed
    if base.is_absolute() and (parsed.scheme, host, parsed.port) == (
        base.scheme,
        (base.host or "").lower().rstrip("."),
        base.port,
    ):
        return parsed
    return None


def is_html_file(file: SlackFile) -> bool:
    """A file that is itself HTML: an HTML body is then the file, not a sign-in page."""
    return file.mimetype in _HTML_TYPES or file.extension in ("html", "htm", "xhtml")


async def download(
    session: aiohttp.ClientSession,
    file: SlackFile,
    *,
    token: str,
    api_url: str,
    max_bytes: int,
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> bytes:
    """The file's bytes, or `DownloadError` saying why not. Never reads more than `max_bytes` + one piece."""
    if file.size is not None and file.size > max_bytes:
        raise DownloadError(DownloadProblem.TOO_LARGE, f"size {file.size}")
    if file.url is None:
        raise DownloadError(DownloadProblem.NO_URL)
    url = allowed_url(file.url, api_url=api_url)
    if url is None:
        raise DownloadError(DownloadProblem.FOREIGN_HOST, _origin(file.url))
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for _ in range(MAX_REDIRECTS + 1):
            async with session.get(url, headers=headers, allow_redirects=False, timeout=client_timeout) as response:
                if response.status in _REDIRECTS and "Location" in response.headers:
                    target = response.url.join(URL(response.headers["Location"]))
                    next_url = allowed_url(str(target), api_url=api_url)
                    if next_url is None:
                        raise DownloadError(DownloadProblem.FOREIGN_HOST, f"redirect to {_origin(str(target))}")
                    url = next_url
                    continue
                _check_response(response, file, max_bytes)
                return await _read_capped(response, max_bytes)
    except DownloadError:
        raise
    except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
        raise DownloadError(DownloadProblem.TIMEOUT, type(exc).__name__) from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # ValueError: a Location yarl cannot parse
        raise DownloadError(DownloadProblem.NETWORK, type(exc).__name__) from None
    raise DownloadError(DownloadProblem.HTTP_ERROR, "too many redirects")


def _check_response(response: aiohttp.ClientResponse, file: SlackFile, max_bytes: int) -> None:
    status = response.status
    if status in (401, 403):
        raise DownloadError(DownloadProblem.NO_ACCESS, f"HTTP {status}", status=status)
    if status in (404, 410):
        raise DownloadError(DownloadProblem.DELETED, f"HTTP {status}", status=status)
    if status != 200:
        raise DownloadError(DownloadProblem.HTTP_ERROR, f"HTTP {status}", status=status)
    if response.content_type in _HTML_TYPES and not is_html_file(file):
        raise DownloadError(DownloadProblem.NO_ACCESS, "an HTML page instead of the file (a sign-in page)")
    length = response.content_length
    if length is not None and length > max_bytes:
        raise DownloadError(DownloadProblem.TOO_LARGE, f"Content-Length {length}")


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    pieces: list[bytes] = []
    received = 0
    async for piece in response.content.iter_chunked(READ_PIECE):
        received += len(piece)
        if received > max_bytes:
            response.close()  # drop the connection: releasing it would read (and waste) the rest
            raise DownloadError(DownloadProblem.TOO_LARGE, f"over {max_bytes} bytes while reading")
        pieces.append(piece)
    return b"".join(pieces)


async def file_info(
    session: aiohttp.ClientSession,
    file_id: str,
    *,
    token: str,
    api_url: str,
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> Mapping[str, Any]:
    """The full file object from `files.info`, for an event that carried only the id (`check_file_info`)."""
    url = URL(api_url).join(URL("files.info"))
    try:
        async with session.get(
            url, params={"file": file_id}, headers={"Authorization": f"Bearer {token}"}, timeout=client_timeout
        ) as response:
            body = await response.json(content_type=None)
    except TimeoutError as exc:
        raise DownloadError(DownloadProblem.TIMEOUT, f"files.info {type(exc).__name__}") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise DownloadError(DownloadProblem.NETWORK, f"files.info {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise DownloadError(DownloadProblem.HTTP_ERROR, "files.info answered no object")
    if body.get("ok") and isinstance(body.get("file"), dict):
        return body["file"]
    error = str(body.get("error") or "unknown")
    if error in ("file_not_found", "file_deleted"):
        raise DownloadError(DownloadProblem.DELETED, f"files.info {error}")
    if error in ("missing_scope", "not_authed", "invalid_auth", "no_permission", "access_denied"):
        raise DownloadError(DownloadProblem.NO_ACCESS, f"files.info {error}")
    raise DownloadError(DownloadProblem.HTTP_ERROR, f"files.info {error}")


def _origin(url: str) -> str:
    """Scheme and host of a URL, for the log (never its path: Slack's paths name the file and team)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "an unparsable URL"
    return f"{parsed.scheme}://{parsed.host}" if parsed.host else "a relative URL"
