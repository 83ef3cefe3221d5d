"""PDFs for the model: checked and read with pypdf, sent as a `document_url` chunk or as their text.

A PDF is opened before it is sent even when it goes as a document: a damaged or locked one would make Mistral
refuse the whole request, question included, so it is caught here and becomes a note. Its text is extracted
in both cases (up to a cap) so that later turns of the thread can read it without the document.
Blocking and CPU-bound: run `read_pdf` in a worker thread.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # Mistral's document_url limits (REFERENCE.md)
MAX_DOCUMENT_PAGES = 1000
_HEADER_WINDOW = 1024  # the %PDF- header may follow some junk; readers look this far


class PdfProblem(Exception):
    """The PDF cannot be read; `reason` completes "I skipped `x`: …" (see bot.files.notes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PdfContent:
    pages: int
    text: str  # "[Page n]" headed text of the pages read, at most `max_chars` characters
    text_complete: bool  # every page's text is in `text`
    has_text: bool  # some page has a text layer (a scan has none)


def document_chunk(data: bytes) -> dict[str, str]:
    """The PDF as Mistral's chunk: a base64 data: URL (Mistral cannot fetch Slack's private URLs)."""
    return {"type": "document_url", "document_url": "data:application/pdf;base64," + base64.b64encode(data).decode()}


def read_pdf(data: bytes, *, max_chars: int) -> PdfContent:
    """Page count and text of the PDF in `data` (text cut at `max_chars`); `PdfProblem` if it can't be read."""
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise PdfProblem("it isn't a PDF (it may be damaged)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _unlock(reader):
            raise PdfProblem("it is password-protected")
        pages = len(reader.pages)
        if pages == 0:
            raise PdfProblem("it has no pages (it may be damaged)")
        parts: list[str] = []
        length = 0
        complete = True
        found_text = False
        for number, page in enumerate(reader.pages, start=1):
            if length >= max_chars:
                complete = False
                break
            try:
                page_text = (page.extract_text() or "").strip()
                found_text = found_text or bool(page_text)
            except Exception:  # one page's broken content stream must not cost the others
                page_text = "(this page could not be read)"
            part = f"[Page {number}]\n{page_text}\n\n"
            parts.append(part)
            length += len(part)
    except PdfProblem:
        raise
    except FileNotDecryptedError:
        raise PdfProblem("it is password-protected") from None
    except Exception:
        # pypdf on untrusted bytes raises PdfReadError and, on malformed structures, also KeyError,
        # TypeError, ValueError, AttributeError, RecursionError…: all mean the same thing for a person.
        raise PdfProblem("it isn't a readable PDF (it may be damaged)") from None
    text = "".join(parts).rstrip("\n")
    if len(text) > max_chars:
        text, complete = text[:max_chars], False
    return PdfContent(pages=pages, text=text, text_complete=complete, has_text=found_text)


def _unlock(reader: PdfReader) -> bool:
    """Open a PDF locked only against editing (an owner password, an empty user password), as viewers do."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # DependencyError: AES needs the optional `cryptography` package; locked it stays
        return False
