"""`read_files`, the public API: Slack file objects in, chunks the (fake) Mistral accepts and notes out."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.files import FileKind, FileLimits, FilesRead, read_files
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.files import samples

MB = 1024 * 1024


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def read(
    session: aiohttp.ClientSession,
    slack: fs.FakeSlack,
    files: list[dict[str, Any]],
    *,
    budget: int = 100_000,
    token: str = fs.BOT_TOKEN,
    **limits: Any,
) -> FilesRead:
    return await read_files(
        files, session=session, token=token, api_url=slack.api_url, text_budget=budget, limits=FileLimits(**limits)
    )


async def ask(session: aiohttp.ClientSession, mistral: fm.FakeMistral, content: Any) -> tuple[int, str]:
    """Send one user message to the fake Mistral; the status and the raw body (SSE or an error)."""
    body = {"model": "mistral-large-latest", "messages": [{"role": "user", "content": content}], "stream": True}
    headers = {"Authorization": f"Bearer {fm.API_KEY}"}
    async with session.post(f"{mistral.url}/v1/chat/completions", json=body, headers=headers) as response:
        return response.status, await response.text()


def texts(result: FilesRead) -> str:
    return "\n".join(c["text"] for c in result.chunks if c["type"] == "text")


async def test_several_files_in_one_message_reach_the_model_in_order(
    slack: fs.FakeSlack, mistral: fm.FakeMistral, session: aiohttp.ClientSession
) -> None:
    png = samples.image_bytes("PNG", (120, 80))
    pdf = samples.pdf_bytes(["The spec says 42."])
    files = [
        slack.host_file(png, "screenshot.png", "image/png"),
        slack.host_file(b"ERROR: boom\n", "app.log", "text/plain"),
        slack.host_file(pdf, "spec.pdf", "application/pdf"),
        slack.host_file(b"PK\x03\x04...", "bundle.zip", "application/zip"),
    ]
    result = await read(session, slack, files)

    assert [c["type"] for c in result.chunks] == ["text", "image_url", "text", "text", "document_url", "text"]
    assert [o.kind for o in result.outcomes] == [FileKind.IMAGE, FileKind.TEXT, FileKind.PDF, FileKind.OTHER]
    assert [o.sent_as for o in result.outcomes] == ["image", "text", "document", None]
    assert "Attached image `screenshot.png`:" == result.chunks[0]["text"]
    assert "ERROR: boom" in result.chunks[2]["text"] and "`app.log`" in result.chunks[2]["text"]
    assert result.chunks[3]["text"] == "Attached PDF `spec.pdf` (1 page):"
    assert result.chunks[5]["text"] == (
        "[The attached file `bundle.zip` was not read: it is an archive, which I can't unpack.]"
    )
    # The PDF's exact bytes, the log's exact text; the image re-encoded at its size.
    [image, document] = [a for a in fm.attachments({"messages": [{"role": "user", "content": result.chunks}]})]
    assert document.data == pdf and document.mime == "application/pdf"
    assert Image.open(io.BytesIO(image.data)).size == (120, 80)
    # What the store keeps
    log_outcome, pdf_outcome = result.outcomes[1], result.outcomes[2]
    assert log_outcome.text == "ERROR: boom\n" and not log_outcome.truncated
    assert pdf_outcome.text is not None and "The spec says 42." in pdf_outcome.text and pdf_outcome.pages == 1
    assert result.outcomes[0].image is not None and result.image_tokens > 0
    assert [o.file_id for o in result.outcomes] == [f["id"] for f in files]
    # One note, for the archive; the question is still answerable: the fake Mistral takes the content.
    assert result.note_text() == "I skipped `bundle.zip`: it is an archive, which I can't unpack."
    status, body = await ask(session, mistral, [{"type": "text", "text": "what is wrong?"}, *result.chunks])
    assert status == 200, body
    assert "data: [DONE]" in body


async def test_pdfs_as_text_when_documents_are_off(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    pdf = slack.host_file(samples.pdf_bytes(["Alpha page", "Beta page"]), "two.pdf", "application/pdf")
    scan = slack.host_file(samples.pdf_bytes([""]), "scan.pdf", "application/pdf")
    result = await read(session, slack, [pdf, scan], documents=False)
    assert [o.sent_as for o in result.outcomes] == ["text", None]
    assert "[Page 1]\nAlpha page" in result.chunks[0]["text"] and "[Page 2]\nBeta page" in result.chunks[0]["text"]
    assert result.chunks[0]["text"].startswith("Attached PDF's text `two.pdf`:")
    assert result.notes == [
        "I skipped `scan.pdf`: it has no text I can extract (a scan?), and reading PDFs as documents is turned off "
        "here."
    ]
    assert not any(c["type"] == "document_url" for c in result.chunks)


async def test_images_past_the_cap_are_left_out_by_name(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    files = [slack.host_file(samples.image_bytes("PNG", (20, 20)), f"shot{i}.png", "image/png") for i in range(10)]
    result = await read(session, slack, files)
    assert sum(c["type"] == "image_url" for c in result.chunks) == 8
    assert result.notes == [
        "I skipped `shot8.png`: I look at no more than 8 images per message.",
        "I skipped `shot9.png`: I look at no more than 8 images per message.",
    ]
    assert slack.downloads_of(files[9]["id"]) == []  # not even downloaded


async def test_text_files_share_the_budget_and_the_long_one_is_cut_visibly(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    small = slack.host_file(b"key: value\n", "config.yaml", "application/x-yaml")
    big_text = "".join(f"{i:06d} INFO all good\n" for i in range(20_000)) + "FATAL: out of memory\n"
    big = slack.host_file(big_text.encode(), "server.log", "text/plain")
    result = await read(session, slack, [small, big], budget=5_000)
    assert len(texts(result)) <= 5_000
    config, log = result.outcomes
    assert config.sent_as == "text" and not config.truncated and config.note is None
    assert log.sent_as == "text" and log.truncated
    log_chunk = result.chunks[1]["text"]
    assert "FATAL: out of memory" in log_chunk and "000000 INFO" in log_chunk  # a log keeps both ends
    assert "was cut to fit" in log_chunk
    assert log.note is not None and log.note.startswith("`server.log` is long, so I read only part of it (")
    assert log.text == big_text  # the store keeps all of it (under keep_text_chars)


async def test_the_store_keeps_a_bounded_text(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    text = "word " * 100_000
    obj = slack.host_file(text.encode(), "long.txt", "text/plain")
    [outcome] = (await read(session, slack, [obj], keep_text_chars=10_000)).outcomes
    assert outcome.text is not None and len(outcome.text) <= 10_000 and "was not kept" in outcome.text


async def test_no_room_for_text_leaves_the_file_out_with_a_note(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    obj = slack.host_file(b"x" * 10_000, "data.csv", "text/csv")
    result = await read(session, slack, [obj], budget=100)
    [outcome] = result.outcomes
    assert outcome.sent_as is None
    assert outcome.note == "I skipped `data.csv`: there was no room left for it in the conversation."


@pytest.mark.parametrize(
    "change,note",
    [
        ({"mode": "tombstone"}, "I skipped `a.txt`: it was deleted."),
        ({"mode": "hidden_by_limit"}, "I skipped `a.txt`: it is hidden by this workspace's plan limits."),
        ({"mode": "external"}, "I skipped `a.txt`: it is stored outside Slack (a linked file), which I can't open."),
        ({"size": 30 * MB}, "I skipped `a.txt`: it is over the 20 MB limit for files."),
        ({"file_access": "file_not_found"}, "I skipped `a.txt`: Slack says it isn't available to me."),
    ],
)
async def test_files_that_cannot_be_read_are_not_downloaded(
    slack: fs.FakeSlack, session: aiohttp.ClientSession, change: dict[str, Any], note: str
) -> None:
    obj = {**slack.host_file(b"hello", "a.txt", "text/plain"), **change}
    result = await read(session, slack, [obj])
    assert result.notes == [note]
    assert slack.downloads_of(obj["id"]) == []
    reason = note.removeprefix("I skipped `a.txt`: ").removesuffix(".")
    assert result.chunks == [{"type": "text", "text": f"[The attached file `a.txt` was not read: {reason}.]"}]


async def test_faults_end_in_notes_naming_the_file(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    deleted = slack.host_file(b"soon gone", "deleted.txt", "text/plain")
    slack.delete_file(deleted["id"])
    corrupt = slack.host_file(b"\x89PNG\r\n\x1a\n broken", "broken.png", "image/png")
    bad_pdf = slack.host_file(b"%PDF-1.7\n" + bytes(range(256)) * 8, "broken.pdf", "application/pdf")
    binary = slack.host_file(b"\x7fELF\x00\x00\x00" * 50, "notes.txt", "text/plain")
    empty = slack.host_file(b"  \n", "empty.md", "text/markdown")
    gif = slack.host_file(samples.animated_gif(), "party.gif", "image/gif")
    result = await read(session, slack, [deleted, corrupt, bad_pdf, binary, empty, gif])
    assert result.notes == [
        "I skipped `deleted.txt`: it was deleted.",
        "I skipped `broken.png`: it isn't an image I can open (not PNG, JPEG, GIF or WebP, or damaged).",
        "I skipped `broken.pdf`: it isn't a readable PDF (it may be damaged).",
        "I skipped `notes.txt`: it doesn't look like text.",
        "I skipped `empty.md`: it is empty.",
        "`party.gif` is animated; I see only its first frame.",
    ]
    assert [o.sent for o in result.outcomes] == [False] * 5 + [True]
    assert result.note_text() == "\n".join(f"- {n}" for n in result.notes)


async def test_without_files_read_the_note_says_what_an_admin_can_do(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    obj = slack.host_file(samples.image_bytes("PNG"), "a.png", "image/png")
    result = await read(session, slack, [obj], token="xoxb-token-without-files-read")
    assert result.note_text() == (
        "I skipped `a.png`: I'm not allowed to download files here (the app needs the `files:read` scope: "
        "an admin can add it and reinstall the app)."
    )


async def test_a_stub_is_completed_with_files_info(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(b"from files.info", "shared.txt", "text/plain")
    gone = slack.host_file(b"x", "gone.txt", "text/plain")
    slack.delete_file(gone["id"])
    stubs = [{"id": obj["id"], "file_access": "check_file_info"}, {"id": gone["id"], "file_access": "check_file_info"}]
    result = await read(session, slack, stubs)
    assert result.outcomes[0].text == "from files.info" and result.outcomes[0].name == "shared.txt"
    assert result.notes == [f"I skipped `{gone['id']}`: it was deleted."]


async def test_a_50_mb_file_without_a_size_is_refused_early(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    obj = slack.host_file(b"\0" * (50 * MB), "dump.log", "text/plain", chunked=True)
    del obj["size"]
    result = await read(session, slack, [obj])
    assert result.notes == ["I skipped `dump.log`: it is over the 20 MB limit for files."]
    [request] = slack.downloads_of(obj["id"])
    assert not request.complete


async def test_every_kind_passes_the_fake_mistrals_checks(
    slack: fs.FakeSlack, mistral: fm.FakeMistral, session: aiohttp.ClientSession
) -> None:
    files = [
        slack.host_file(samples.image_bytes(fmt), f"pic.{fmt.lower()}", f"image/{fmt.lower()}")
        for fmt in ("PNG", "JPEG", "GIF", "WEBP")
    ]
    files.append(slack.host_file(samples.noise_png((1800, 1200)), "photo.png", "image/png"))
    files.append(slack.host_file("ünïcode ✓".encode("utf-16"), "u16.txt", "text/plain"))
    result = await read(session, slack, files)
    assert result.notes == []
    status, body = await ask(session, mistral, [{"type": "text", "text": "compare"}, *result.chunks])
    assert status == 200, body
    echoed = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in _events(body))
    assert "ünïcode ✓" in echoed and "[image_url: image/jpeg" in echoed and "base64" not in echoed


def _events(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("data: {")]


async def test_image_bytes_are_never_a_slack_url(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(samples.image_bytes("JPEG", (50, 50)), "a.jpg", "image/jpeg")
    result = await read(session, slack, [obj])
    url = result.chunks[1]["image_url"]
    assert url.startswith("data:image/jpeg;base64,") and slack.url not in url
    assert base64.b64decode(url.split(",", 1)[1])[:3] == b"\xff\xd8\xff"
