"""Files people share with a question → content chunks for the model, and a note for each file not (fully) read.

`read_files` takes the `files` of a Slack event and returns, in the files' order, the chunks to append to the
user message's content (after its text) and one `FileOutcome` per file: what the store keeps for later turns
and the note, if any, for the person. Nothing here raises for a bad file: every failure is an outcome.

    read = await read_files(event["files"], session=session, token=bot_token, api_url=settings.slack_api_url,
                            text_budget=room_in_characters, limits=FileLimits(max_file_bytes=..., documents=...))
    content = [{"type": "text", "text": question}, *read.chunks]
    if read.notes: ...tell the person (read.note_text())...

Modules: `kinds` (pure: classification, decoding, trimming, budget sharing), `download` (Slack, capped),
`images` (Pillow), `pdf` (pypdf), `text` (a text file as the model reads it), `results` (what a read gives),
`notes` (what people read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import aiohttp

from bot.files import notes
from bot.files.download import DownloadError, download, file_info
from bot.files.images import MAX_IMAGE_BYTES, MAX_SIDE, ImageProblem, PreparedImage, image_tokens, prepare_image
from bot.files.kinds import (
    FileKind,
    SlackFile,
    classify,
    decode_text,
    describe_other,
    keeps_tail,
    share_budget,
    trim_text,
)
from bot.files.pdf import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_PAGES, PdfContent, PdfProblem, document_chunk, read_pdf
from bot.files.results import Chunk, FileOutcome, FilesRead, SentAs
from bot.files.text import TextChunk, text_chunk

__all__ = [
    "FileKind",
    "FileLimits",
    "FileOutcome",
    "FilesRead",
    "PreparedImage",
    "SlackFile",
    "TextChunk",
    "image_tokens",
    "prepare_image",
    "read_files",
    "text_chunk",
]

log = logging.getLogger(__name__)

MB = 1024 * 1024
MIN_TEXT_CHARS = 200  # a file that would get fewer characters than this is left out, not shown as a stub
T = TypeVar("T")


@dataclass(frozen=True)
class FileLimits:
    """The per-request limits (Settings → `MAX_FILE_MB`, `MISTRAL_DOCUMENTS`; the rest are the API's)."""

    max_file_bytes: int = 20 * MB  # MAX_FILE_MB
    documents: bool = True  # MISTRAL_DOCUMENTS: PDFs as document_url chunks; False: their extracted text
    max_images: int = 8  # per message; Mistral takes "a handful" per request (REFERENCE.md)
    max_image_side: int = MAX_SIDE
    max_image_bytes: int = MAX_IMAGE_BYTES
    keep_text_chars: int = 500_000  # text kept for later turns, per file (about a 128k-token context's worth)
    concurrency: int = 3  # downloads at once: bounded memory (3 × max_file_bytes) and a polite load on Slack

    @classmethod
    def from_settings(cls, *, max_file_mb: float, documents: bool) -> FileLimits:
        """From `MAX_FILE_MB` (mebibytes, as people count file sizes) and `MISTRAL_DOCUMENTS`."""
        return cls(max_file_bytes=int(max_file_mb * MB), documents=documents)


async def read_files(
    files: Sequence[Mapping[str, Any]],
    *,
    session: aiohttp.ClientSession,
    token: str,
    api_url: str,
    text_budget: int,
    limits: FileLimits = FileLimits(),  # frozen: one shared default is safe
) -> FilesRead:
    """Download and read `files` (Slack file objects) into chunks within `limits` and `text_budget`.

    `text_budget`: characters of text chunks the files may take in all (headers and notes included); text-like
    files share it fairly (`kinds.share_budget`), each cut with a visible marker when it gets less than it has.
    """
    files = [f for f in files if isinstance(f, Mapping)]  # a malformed entry is no file
    resolved = await _gather([_resolve(f, session=session, token=token, api_url=api_url) for f in files], limits)
    work = plan([file for file, _ in resolved], limits)
    for item, (_, problem) in zip(work, resolved, strict=True):
        item.reason = problem or item.reason  # files.info's answer explains a stub better than its missing type
    fetched = await _gather(
        [_fetch(w, session=session, token=token, api_url=api_url, limits=limits) for w in work], limits
    )
    processed = await _gather([_process(w, limits) for w in fetched], limits)
    return _assemble(processed, text_budget=text_budget, keep_text_chars=limits.keep_text_chars)


# --- stages ---------------------------------------------------------------------------------------------------


@dataclass
class Work:
    """One file on its way through the stages; `reason` set means it stops where it is, with that note."""

    file: SlackFile
    kind: FileKind
    reason: str | None = None
    data: bytes | None = None
    received: int | None = None  # bytes downloaded
    image: PreparedImage | None = None
    text: str | None = None
    pdf: PdfContent | None = None
    as_document: bool = False
    extra_note: str | None = None  # read, with a remark (animated GIF, PDF sent as text)


async def _gather(calls: Sequence[Awaitable[T]], limits: FileLimits) -> list[T]:
    gate = asyncio.Semaphore(max(limits.concurrency, 1))

    async def gated(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(gated(c) for c in calls)))


async def _resolve(
    obj: Mapping[str, Any], *, session: aiohttp.ClientSession, token: str, api_url: str
) -> tuple[SlackFile, str | None]:
    """The file object, completed with files.info when the event carried only its id (`check_file_info`)."""
    file = SlackFile.parse(obj)
    if file.url is not None or file.mode in ("tombstone", "hidden_by_limit", "external") or not file.id:
        return file, None  # complete, or nothing to download anyway
    if file.file_access == "file_not_found":
        return file, None
    if file.file_access == "check_file_info" or not file.mimetype:
        try:
            return SlackFile.parse(await file_info(session, file.id, token=token, api_url=api_url)), None
        except DownloadError as exc:
            log.info("files.info failed for file %s: %s", file.id, exc)
            return file, notes.download_reason(exc, max_bytes=0)
    return file, None


def plan(files: Sequence[SlackFile], limits: FileLimits) -> list[Work]:
    """What happens to each file before any download: skipped for its mode, kind, size, or the image cap."""
    work: list[Work] = []
    images = 0
    for file in files:
        kind = classify(file)
        item = Work(file, kind)
        if file.mode == "tombstone":
            item.reason = notes.DELETED
        elif file.file_access == "file_not_found":  # Slack Connect and the like: Slack withholds it
            item.reason = notes.UNAVAILABLE
        elif file.mode == "hidden_by_limit":
            item.reason = notes.HIDDEN
        elif file.mode == "external":
            item.reason = notes.EXTERNAL
        elif kind is FileKind.OTHER:
            item.reason = "it is " + describe_other(file)
        elif file.size is not None and file.size > limits.max_file_bytes:
            item.reason = notes.too_large(limits.max_file_bytes)
        elif kind is FileKind.IMAGE:
            images += 1
            if images > limits.max_images:
                item.reason = notes.image_cap(limits.max_images)
        work.append(item)
    return work


async def _fetch(item: Work, *, session: aiohttp.ClientSession, token: str, api_url: str, limits: FileLimits) -> Work:
    if item.reason is not None:
        return item
    try:
        item.data = await download(session, item.file, token=token, api_url=api_url, max_bytes=limits.max_file_bytes)
        item.received = len(item.data)
    except DownloadError as exc:
        log.info("file %s not downloaded: %s", item.file.id, exc)
        item.reason = notes.download_reason(exc, max_bytes=limits.max_file_bytes)
    return item


async def _process(item: Work, limits: FileLimits) -> Work:
    """Decode what was downloaded, in a worker thread (Pillow, pypdf and big decodes hold the CPU)."""
    if item.reason is not None or item.data is None:
        return item
    data = item.data
    try:
        if item.kind is FileKind.IMAGE:
            item.image = await asyncio.to_thread(
                prepare_image, data, max_side=limits.max_image_side, max_bytes=limits.max_image_bytes
            )
            if item.image.animated:
                item.extra_note = notes.first_frame(item.file.name)
        elif item.kind is FileKind.TEXT:
            text = await asyncio.to_thread(decode_text, data)
            if text is None:
                item.reason = notes.NOT_TEXT
            elif not text.strip():
                item.reason = notes.EMPTY
            else:
                item.text = text  # whole for this turn's trimming; `_kept` bounds what the store gets
        elif item.kind is FileKind.PDF:
            item.pdf = await asyncio.to_thread(read_pdf, data, max_chars=limits.keep_text_chars)
            _route_pdf(item, limits)
    except (ImageProblem, PdfProblem) as exc:
        log.info("file %s not read: %s", item.file.id, exc.reason)
        item.reason = exc.reason
    except Exception:  # a decoder bug must cost one file, never the answer
        log.exception("file %s: unexpected failure while reading it", item.file.id)
        item.reason = "something went wrong while I read it"
    item.data = data if item.as_document else None  # free the bytes that are not sent as they are
    return item


def _route_pdf(item: Work, limits: FileLimits) -> None:
    """A document chunk when documents are on and within Mistral's limits; else the PDF's text, when it has some."""
    assert item.pdf is not None and item.data is not None
    too_big = len(item.data) > MAX_DOCUMENT_BYTES
    too_long = item.pdf.pages > MAX_DOCUMENT_PAGES
    if limits.documents and not too_big and not too_long:
        item.as_document = True
        return
    if not item.pdf.has_text:
        item.reason = notes.PDF_NO_TEXT if not limits.documents else notes.PDF_TOO_BIG_NO_TEXT
        return
    item.text = item.pdf.text
    if limits.documents:  # a fallback the person should know about: charts and scans are not seen
        why = f"it has over {MAX_DOCUMENT_PAGES:,} pages" if too_long else "it is too large to send as a document"
        item.extra_note = notes.pdf_as_text(item.file.name, why)


def _assemble(items: Sequence[Work], *, text_budget: int, keep_text_chars: int) -> FilesRead:
    """Chunks in the files' order; text-like files share what is left of the budget after the fixed texts."""
    fixed: dict[int, list[Chunk]] = {}
    for i, item in enumerate(items):
        name = item.file.name
        if item.reason is not None:
            fixed[i] = [{"type": "text", "text": notes.for_model(name, item.reason)}]
        elif item.image is not None:
            fixed[i] = [{"type": "text", "text": f"Attached image {notes.code(name)}:"}, item.image.chunk]
        elif item.as_document and item.data is not None and item.pdf is not None:
            pages = f"{item.pdf.pages} page{'s' if item.pdf.pages != 1 else ''}"
            header = f"Attached PDF {notes.code(name)} ({pages}):"
            fixed[i] = [{"type": "text", "text": header}, document_chunk(item.data)]
    used = sum(len(c["text"]) for chunks in fixed.values() for c in chunks if c["type"] == "text")

    texts = [i for i, item in enumerate(items) if i not in fixed and item.text is not None]
    wanted = [_render(items[i], limit=10**12).length for i in texts]
    shares = dict(zip(texts, share_budget(wanted, text_budget - used), strict=True))

    chunks: list[Chunk] = []
    outcomes: list[FileOutcome] = []
    for i, item in enumerate(items):
        file = item.file
        base = FileOutcome(
            file_id=file.id,
            name=file.name,
            kind=item.kind,
            mimetype=file.mimetype,
            size=file.size if file.size is not None else item.received,
            pages=item.pdf.pages if item.pdf is not None else None,
            text=_kept(item, keep_text_chars),
        )
        if i in fixed:
            sent_as: SentAs | None = None
            if item.reason is None:
                sent_as = "image" if item.image is not None else "document"
            note = notes.skipped(file.name, item.reason) if item.reason is not None else item.extra_note
            outcome = replace(base, sent_as=sent_as, note=note, chunks=tuple(fixed[i]), image=item.image)
        else:
            outcome = _text_outcome(base, item, shares.get(i, 0))
        chunks.extend(outcome.chunks)
        outcomes.append(outcome)
    return FilesRead(chunks=chunks, outcomes=outcomes)


def _kept(item: Work, limit: int) -> str | None:
    """The text the store keeps for later turns: all of it, or (past `limit`) its start, or a log's both ends."""
    if item.pdf is not None:
        return item.pdf.text if item.pdf.has_text else None  # read_pdf already stopped at the limit
    if item.text is None or len(item.text) <= limit:
        return item.text
    marker = f"\n[… the rest ({len(item.text):,} characters in all) was not kept …]"
    if keeps_tail(item.file):
        return trim_text(item.text, limit, keep_tail=True).text
    return trim_text(item.text, max(limit - len(marker), 0)).text + marker


def _render(item: Work, *, limit: int) -> TextChunk:
    label = "PDF's text" if item.kind is FileKind.PDF else "file"
    return text_chunk(item.file.name, item.text or "", limit=limit, keep_tail=keeps_tail(item.file), label=label)


def _text_outcome(base: FileOutcome, item: Work, share: int) -> FileOutcome:
    name = item.file.name
    sent = _render(item, limit=share)
    if sent.cut and (sent.kept < MIN_TEXT_CHARS or sent.length > share):
        return replace(
            base,
            note=notes.skipped(name, notes.NO_ROOM),
            chunks=({"type": "text", "text": notes.for_model(name, notes.NO_ROOM)},),
        )
    note = item.extra_note
    if sent.cut:
        note = " ".join(n for n in (note, notes.cut(name, sent.kept, sent.total)) if n)
    return replace(base, sent_as="text", truncated=sent.cut, note=note, chunks=(sent.chunk,))
