"""The pure part: classification, text decoding, trimming, budget sharing, the text chunk's bounds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.files import FileLimits, text_chunk
from bot.files.kinds import (
    FileKind,
    SlackFile,
    classify,
    decode_text,
    describe_other,
    fence_for,
    keeps_tail,
    share_budget,
    trim_text,
)
from bot.files.notes import code


def slack_file(name: str, mimetype: str = "", filetype: str = "", **extra: Any) -> SlackFile:
    return SlackFile.parse({"id": "F1", "name": name, "mimetype": mimetype, "filetype": filetype, **extra})


@pytest.mark.parametrize(
    "name,mimetype,filetype,kind",
    [
        ("shot.png", "image/png", "png", FileKind.IMAGE),
        ("photo.JPG", "image/jpeg", "jpg", FileKind.IMAGE),
        ("anim.gif", "image/gif", "gif", FileKind.IMAGE),
        ("pic.webp", "image/webp", "webp", FileKind.IMAGE),
        ("pic.webp", "application/octet-stream", "", FileKind.IMAGE),  # generic type: the extension decides
        ("diagram.svg", "image/svg+xml", "svg", FileKind.TEXT),  # SVG is XML source to the model
        ("photo.heic", "image/heic", "heic", FileKind.OTHER),
        ("spec.pdf", "application/pdf", "pdf", FileKind.PDF),
        ("spec.pdf", "application/octet-stream", "pdf", FileKind.PDF),
        ("notes.txt", "text/plain", "text", FileKind.TEXT),
        ("README.md", "text/markdown", "markdown", FileKind.TEXT),
        ("app.log", "application/octet-stream", "", FileKind.TEXT),
        ("data.json", "application/json", "json", FileKind.TEXT),
        ("table.csv", "text/csv", "csv", FileKind.TEXT),
        ("config.yaml", "application/x-yaml", "yaml", FileKind.TEXT),
        ("feed.xml", "application/xml", "xml", FileKind.TEXT),
        ("ld.json", "application/ld+json", "json", FileKind.TEXT),
        ("main.rs", "", "rust", FileKind.TEXT),
        ("snippet", "text/plain", "python", FileKind.TEXT),  # a Slack snippet: text/plain with its language
        ("Dockerfile", "application/octet-stream", "", FileKind.TEXT),
        ("script.sh", "application/x-sh", "shell", FileKind.TEXT),
        ("archive.zip", "application/zip", "zip", FileKind.OTHER),
        ("backup.tar.gz", "application/x-gzip", "gzip", FileKind.OTHER),
        ("clip.mp4", "video/mp4", "mp4", FileKind.OTHER),
        ("voice.m4a", "audio/mp4", "m4a", FileKind.OTHER),
        ("report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", "other"),
        ("budget.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", "other"),
        ("mystery.bin", "application/octet-stream", "binary", FileKind.OTHER),
    ],
)
def test_classify(name: str, mimetype: str, filetype: str, kind: FileKind) -> None:
    assert classify(slack_file(name, mimetype, filetype)) == kind


@pytest.mark.parametrize(
    "name,mimetype,label",
    [
        ("a.zip", "application/zip", "archive"),
        ("a.mov", "video/quicktime", "video"),
        ("a.mp3", "audio/mpeg", "audio"),
        ("a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "PDF"),
        ("a.xlsx", "application/vnd.ms-excel", "CSV"),
        ("a.pptx", "application/vnd.ms-powerpoint", "presentation"),
        ("a.heic", "image/heic", "JPEG or PNG"),
        ("a.bin", "application/octet-stream", "a type of file I can't read"),
    ],
)
def test_other_files_say_what_they_are(name: str, mimetype: str, label: str) -> None:
    assert label in describe_other(slack_file(name, mimetype))


def test_slack_file_reads_the_event_object() -> None:
    f = SlackFile.parse(
        {
            "id": "F9",
            "name": "x.png",
            "title": "My screenshot",
            "mimetype": "image/png; charset=binary",
            "size": 1234,
            "url_private": "https://files.slack.com/files-pri/T1-F9/x.png",
            "url_private_download": "https://files.slack.com/files-pri/T1-F9/download/x.png",
        }
    )
    assert (f.id, f.name, f.mimetype, f.size, f.mode) == ("F9", "x.png", "image/png", 1234, "hosted")
    assert f.url == "https://files.slack.com/files-pri/T1-F9/download/x.png"  # the download URL first
    bare = SlackFile.parse({"id": "F8", "title": "untitled", "size": "big", "mode": "tombstone"})
    assert (bare.name, bare.size, bare.url, bare.mode, bare.extension) == ("untitled", None, None, "tombstone", "")


@pytest.mark.parametrize(
    "data,text",
    [
        ("héllo wörld\n".encode(), "héllo wörld\n"),
        (b"\xef\xbb\xbfwith BOM", "with BOM"),
        ("utf-16 café\r\nline".encode("utf-16"), "utf-16 café\nline"),  # BOM included by the codec
        ("utf-16be".encode("utf-16-be"), "utf-16be"),  # no BOM: its zero bytes tell
        ("le no bom".encode("utf-16-le"), "le no bom"),
        ("utf-32 ✓".encode("utf-32"), "utf-32 ✓"),
        ("naïve café".encode("latin-1"), "naïve café"),
        ("“smart quotes” – cp1252".encode("cp1252"), "“smart quotes” – cp1252"),
        (b"\x81\x8d control-ish latin-1 bytes", "\x81\x8d control-ish latin-1 bytes"),
        ("cut mid-chäracter é".encode()[:-1], "cut mid-chäracter \ufffd"),
        (b"\x1b[31mred\x1b[0m log line\n", "\x1b[31mred\x1b[0m log line\n"),  # ANSI colours are text
        (b"", ""),
    ],
)
def test_decode_text(data: bytes, text: str) -> None:
    assert decode_text(data) == text


@pytest.mark.parametrize(
    "data",
    [
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00>\x00\x01\x00\x00\x00",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)),
        bytes(range(32)) * 10,
    ],
)
def test_binary_is_not_text(data: bytes) -> None:
    assert decode_text(data) is None


def test_trim_keeps_short_text_whole() -> None:
    trimmed = trim_text("short", 10)
    assert (trimmed.text, trimmed.cut, trimmed.kept, trimmed.total) == ("short", False, 5, 5)


def test_trim_cuts_at_a_line_end_when_one_is_near() -> None:
    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 characters a line
    trimmed = trim_text(text, 95)
    assert trimmed.cut and trimmed.text.endswith("\n") and len(trimmed.text) == 90
    assert trim_text("x" * 100, 30).text == "x" * 30  # no line end: a hard cut


def test_trim_of_a_log_keeps_both_ends_within_the_limit() -> None:
    text = "".join(f"{i:05d} ok\n" for i in range(2000)) + "FATAL: disk full\n"
    trimmed = trim_text(text, 1000, keep_tail=True)
    assert len(trimmed.text) <= 1000
    assert trimmed.text.startswith("00000 ok\n") and trimmed.text.endswith("FATAL: disk full\n")
    assert "characters left out here" in trimmed.text
    assert trimmed.kept < trimmed.total


@pytest.mark.parametrize(
    "sizes,budget,shares",
    [
        ([100, 100], 1000, [100, 100]),  # room for all
        ([100, 5000], 1000, [100, 900]),  # the small one whole, the big one the rest
        ([5000, 5000], 1000, [500, 500]),
        ([10, 5000, 3000], 1000, [10, 495, 495]),
        ([], 1000, []),
        ([100], -5, [0]),
    ],
)
def test_share_budget(sizes: list[int], budget: int, shares: list[int]) -> None:
    assert share_budget(sizes, budget) == shares


@given(st.lists(st.integers(0, 10_000), max_size=8), st.integers(0, 50_000))
def test_shares_never_exceed_the_budget_or_the_want(sizes: list[int], budget: int) -> None:
    shares = share_budget(sizes, budget)
    assert sum(shares) <= budget
    assert all(0 <= s <= w for s, w in zip(shares, sizes, strict=True))
    if sum(sizes) <= budget:
        assert shares == sizes


def test_fence_is_longer_than_any_backtick_run() -> None:
    assert fence_for("plain") == "```"
    assert fence_for("a ```` b") == "`````"


def test_logs_are_read_from_both_ends() -> None:
    assert keeps_tail(slack_file("server.log", "text/plain"))
    assert not keeps_tail(slack_file("notes.txt", "text/plain"))


def test_code_spans_cannot_break_out() -> None:
    assert code("we`ird\nname.txt") == "`we'ird name.txt`"
    assert len(code("x" * 500)) <= 82


def test_text_chunk_whole_and_cut() -> None:
    whole = text_chunk("a.py", "print('hi')\n", limit=1000)
    assert not whole.cut and whole.chunk["text"] == "Attached file `a.py`:\n```\nprint('hi')\n```"
    long = "".join(f"row {i}\n" for i in range(5000))
    cut = text_chunk("rows.csv", long, limit=2000)
    assert cut.cut and cut.length <= 2000 and cut.total == len(long)
    assert cut.chunk["text"].endswith(f"[`rows.csv` was cut to fit: {cut.kept:,} of {len(long):,} characters shown.]")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=3000), st.integers(300, 4000), st.booleans())
def test_a_text_chunk_never_exceeds_its_limit(text: str, limit: int, tail: bool) -> None:
    sent = text_chunk("some file.txt", text, limit=limit, keep_tail=tail)
    assert sent.length <= limit or sent.kept == 0  # no room even for the frame (a wall of backticks): nothing
    assert sent.cut == (len(text) > sent.kept)


def test_default_limits() -> None:
    limits = FileLimits()
    assert limits.max_file_bytes == 20 * 1024 * 1024 and limits.documents and limits.max_images == 8
