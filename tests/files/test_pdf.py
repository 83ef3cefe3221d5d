"""PDFs with pypdf: real small PDFs written in the test, damaged and locked ones as problems."""

from __future__ import annotations

import base64

import pytest

from bot.files.pdf import PdfProblem, document_chunk, read_pdf
from tests.files import samples


def test_a_pdf_is_read_page_by_page() -> None:
    pages = ["Quarterly report\nRevenue grew 12%", "Page two (appendix)"]
    content = read_pdf(samples.pdf_bytes(pages), max_chars=10_000)
    assert content.pages == 2 and content.has_text and content.text_complete
    assert content.text.startswith("[Page 1]\nQuarterly report")
    assert "Revenue grew 12%" in content.text
    assert "[Page 2]\nPage two (appendix)" in content.text


def test_the_text_stops_at_its_cap() -> None:
    pages = [f"Page {i} " + "lorem ipsum " * 30 for i in range(1, 41)]
    content = read_pdf(samples.pdf_bytes(pages), max_chars=1_000)
    assert content.pages == 40 and not content.text_complete and len(content.text) <= 1_000


def test_a_pdf_without_text_says_so() -> None:
    content = read_pdf(samples.pdf_bytes([""]), max_chars=1_000)
    assert content.pages == 1 and not content.has_text


def test_the_document_chunk_carries_the_exact_bytes() -> None:
    data = samples.pdf_bytes(["hello"])
    chunk = document_chunk(data)
    assert chunk["type"] == "document_url"
    prefix = "data:application/pdf;base64,"
    assert chunk["document_url"].startswith(prefix)
    assert base64.b64decode(chunk["document_url"][len(prefix) :]) == data


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"PK\x03\x04 a zip named .pdf", "isn't a PDF"),
        (b"", "isn't a PDF"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 20, "isn't a readable PDF"),
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF", "PDF"),
    ],
)
def test_damaged_pdfs_are_problems_not_crashes(data: bytes, reason: str) -> None:
    with pytest.raises(PdfProblem) as problem:
        read_pdf(data, max_chars=1_000)
    assert reason in problem.value.reason


def test_a_password_protected_pdf_is_refused() -> None:
    with pytest.raises(PdfProblem) as problem:
        read_pdf(samples.encrypted_pdf(["secret plans"], user_password="hunter2"), max_chars=1_000)
    assert problem.value.reason == "it is password-protected"


def test_a_pdf_locked_only_against_editing_is_read() -> None:
    content = read_pdf(samples.encrypted_pdf(["open to read"], user_password=""), max_chars=1_000)
    assert "open to read" in content.text
