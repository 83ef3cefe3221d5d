"""Files shared with a question, end to end: the real bot downloads them from the fake Slack and sends them to the
fake Mistral as content chunks (text, image_url, document_url); each file it cannot read ends in a note."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import aiosqlite
import pytest
from aiohttp import web
from PIL import Image

from bot.config import ConfigError
from bot.files import FileLimits, read_files
from bot.notes import HELP
from tests.conftest import Harness
from tests.fakes import mistral as fm
from tests.fakes import slack as fs
from tests.fakes.slack import BOT_USER, SIGN_IN_PAGE
from tests.files import samples

CHANNEL = "C0FILES"
DM = "D0ADA"
QUESTION = "what is in this?"
MB = 1024 * 1024

UTF8_TEXT = "Grüße aus Köln — naïve café, 東京, Ελλάδα ✓\nZweite Zeile: «Anführungszeichen» and 🙂\n"
CSV_TEXT = 'name,city,amount\nZoë,Łódź,12.50\nJosé,São Paulo,7\n"O\'Brien, Seán",Dún Laoghaire,3\n'
PDF_TEXT = "The spec says 42."


# helpers ---------------------------------------------------------------------------------------------------


def mention(text: str) -> str:
    return f"<@{BOT_USER}> {text}"


def shared(h: Harness, files: list[dict[str, Any]], text: str = QUESTION, **kw: Any) -> dict[str, Any]:
    """Ada's channel message mentioning the bot with `files` (the `file_share` message event)."""
    return h.slack.file_message(kw.pop("channel", CHANNEL), "U0ADA", mention(text), files, **kw)


async def ask(h: Harness, event: dict[str, Any], *, as_mention: bool = True) -> str:
    """Deliver a message (as Slack does a mention: app_mention and message events); the thread's last answer."""
    if as_mention:
        await h.deliver(h.slack.as_mention(event))
    await h.deliver(event)
    await h.settle(timeout=30)
    return final_answer(h, event)


def final_answer(h: Harness, event: dict[str, Any]) -> str:
    """The answer to `event`: the bot's replies after it (a long answer spans several messages), joined."""
    replies = h.slack.bot_replies(event["channel"], event.get("thread_ts") or event["ts"])
    answer = [r.text for r in replies if r.ts > event["ts"]]
    assert answer, "the bot did not answer"
    return "\n".join(answer)


def last_user(body: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in reversed(body["messages"]) if m["role"] == "user")


def chunks_of(content: Any) -> list[dict[str, Any]]:
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def text_of(content: Any) -> str:
    return "\n".join(c["text"] for c in chunks_of(content) if c.get("type") == "text")


def warning_notes(text: str) -> str:
    """The italic warning notes (`_⚠️ …_` paragraphs) that end a message, joined; "" when it ends otherwise."""
    notes: list[str] = []
    for paragraph in reversed(text.rstrip().split("\n\n")):
        if not (paragraph.startswith("_⚠️") and paragraph.endswith("_")):
            break
        notes.insert(0, paragraph)
    return "\n\n".join(notes)


def assert_noted(answer: str, *names: str) -> str:
    """The answer ends with a warning note naming each of `names`; returns the notes."""
    notes = warning_notes(answer)
    assert notes, f"the answer does not end with a `_⚠️ …_` note: {answer!r}"
    for name in names:
        assert name in notes, f"{name} is not named in the notes: {notes!r}"
    return notes


def image_of(attachment: fm.Attachment) -> Image.Image:
    image = Image.open(io.BytesIO(attachment.data))
    image.load()
    assert attachment.mime == Image.MIME[image.format or ""], (attachment.mime, image.format)
    return image


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


async def expected_chunks(slack: fs.FakeSlack, files: list[dict[str, Any]], **limits: Any) -> list[dict[str, Any]]:
    """The chunks `bot.files.read_files` makes for `files` (its downloads are not counted as the bot's)."""
    before = len(slack.file_downloads)
    async with aiohttp.ClientSession() as session:
        read = await read_files(
            files,
            session=session,
            token=fs.BOT_TOKEN,
            api_url=slack.api_url,
            text_budget=10**6,
            limits=FileLimits(**limits),
        )
    del slack.file_downloads[before:]
    return read.chunks


def assert_clean_requests(h: Harness) -> None:
    """No request to the model carried a Slack URL, a remote URL to fetch, or the bot token."""
    for body in h.mistral.chat_requests:
        raw = json.dumps(body)
        assert "files-pri" not in raw and fs.BOT_TOKEN not in raw
        assert all(a.url == "" for a in fm.attachments(body)), "a file went to the model as a URL"


def assert_no_traceback(h: Harness) -> None:
    seen = [m.text for m in h.slack.messages.values()] + [m.text for m in h.slack.deleted]
    seen += [json.dumps(e) for e in h.slack.ephemerals] + [json.dumps(r) for r in h.slack.responses]
    assert not any("Traceback" in s or 'File "' in s for s in seen)


async def statuses(h: Harness) -> list[tuple[str, str]]:
    async with (
        aiosqlite.connect(h.tmp_path / "bot.db") as db,
        db.execute("SELECT status, text FROM messages WHERE role = 'assistant' ORDER BY id") as cursor,
    ):
        return [(r[0], r[1]) for r in await cursor.fetchall()]


async def still_serving(h: Harness) -> None:
    event = h.slack.user_message("C0OTHER", "U0BOB", mention("still there?"))
    assert await ask(h, event) == "You said: [Bob] still there?"


def host_text(h: Harness, text: str, name: str, mimetype: str = "text/plain", **kw: Any) -> dict[str, Any]:
    return h.slack.host_file(text.encode(), name, mimetype, **kw)


# each kind of file reaches the model ---------------------------------------------------------------------


async def test_a_mention_with_an_image_sends_it_in_the_question_and_answers_once(harness: Harness) -> None:
    """The smoke test, in HTTP and Socket Mode: a screenshot and a text file with a mention."""
    h = harness
    await h.start()
    png = samples.image_bytes("PNG", (64, 48))
    image = h.slack.host_file(png, "screenshot.png", "image/png")
    text = host_text(h, UTF8_TEXT, "greeting.txt")
    event = shared(h, [image, text])
    answer = await ask(h, event)  # delivered twice, as Slack does a mention: answered once

    assert len(h.mistral.chat_requests) == 1
    assert len(h.slack.bot_replies(CHANNEL, event["ts"])) == 1
    body = h.mistral.chat_requests[0]
    content = last_user(body)["content"]
    assert isinstance(content, list)
    assert content[0] == {"type": "text", "text": f"[Ada] {QUESTION}"}
    assert content[1:] == await expected_chunks(h.slack, [image, text])
    [sent] = fm.attachments(body)
    assert sent.type == "image_url" and image_of(sent).size == (64, 48)
    assert pixels(sent.data) == pixels(png)  # lossless: the very pixels shared
    assert UTF8_TEXT.rstrip("\n") in text_of(content)
    assert answer.startswith(f"You said: [Ada] {QUESTION}") and warning_notes(answer) == ""
    # One download each, with the bot token, from the file's own URL.
    for file in (image, text):
        [download] = h.slack.downloads_of(file["id"])
        assert download.authorized and download.complete
        assert h.slack.url + download.path == file["url_private_download"]
    assert_clean_requests(h)


@pytest.mark.parametrize("fmt,mime,name", [("PNG", "image/png", "diagram.png"), ("JPEG", "image/jpeg", "photo.jpg")])
async def test_a_large_image_is_downscaled_before_it_is_sent(
    http_harness: Harness, fmt: str, mime: str, name: str
) -> None:
    h = http_harness
    await h.start()
    big = samples.image_bytes(fmt, (4000, 3000))
    file = h.slack.host_file(big, name, mime)
    await ask(h, shared(h, [file]))
    [sent] = fm.attachments(h.mistral.chat_requests[-1])
    assert sent.type == "image_url"
    assert image_of(sent).size == (1540, 1155)  # the model's useful size, the same shape


async def test_a_small_jpeg_reaches_the_model_as_an_image_of_its_size(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    file = h.slack.host_file(samples.image_bytes("JPEG", (320, 200)), "photo.jpeg", "image/jpeg")
    await ask(h, shared(h, [file]))
    [sent] = fm.attachments(h.mistral.chat_requests[-1])
    assert image_of(sent).size == (320, 200)


@pytest.mark.parametrize(
    "text,name,mimetype",
    [
        (UTF8_TEXT, "notes.txt", "text/plain"),
        (CSV_TEXT, "sales.csv", "text/csv"),
        ('{"service": "api", "replicas": 3, "owner": "Zoë"}\n', "config.json", "application/json"),
        ("def main() -> None:\n    print('héllo')\n", "main.py", "text/x-python"),
    ],
)
async def test_a_text_file_reaches_the_model_as_its_exact_text_with_its_name(
    http_harness: Harness, text: str, name: str, mimetype: str
) -> None:
    h = http_harness
    await h.start()
    file = host_text(h, text, name, mimetype)
    answer = await ask(h, shared(h, [file]))
    content = last_user(h.mistral.chat_requests[-1])["content"]
    assert isinstance(content, list)
    assert content[0] == {"type": "text", "text": f"[Ada] {QUESTION}"}
    assert content[1:] == await expected_chunks(h.slack, [file])
    [chunk] = content[1:]
    assert chunk["type"] == "text" and name in chunk["text"] and text.rstrip("\n") in chunk["text"]
    assert fm.attachments(h.mistral.chat_requests[-1]) == []
    assert warning_notes(answer) == ""


async def test_a_pdf_reaches_the_model_as_a_document_with_its_exact_bytes(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    pdf = samples.pdf_bytes([PDF_TEXT, "Page two."])
    file = h.slack.host_file(pdf, "spec.pdf", "application/pdf")
    answer = await ask(h, shared(h, [file]))
    content = last_user(h.mistral.chat_requests[-1])["content"]
    assert content[0] == {"type": "text", "text": f"[Ada] {QUESTION}"}
    assert content[1:] == await expected_chunks(h.slack, [file])
    [sent] = fm.attachments(h.mistral.chat_requests[-1])
    assert sent.type == "document_url" and sent.mime == "application/pdf" and sent.data == pdf
    assert warning_notes(answer) == ""


async def test_with_documents_off_a_pdf_goes_as_its_extracted_text(http_harness: Harness) -> None:
    h = http_harness
    await h.start(MISTRAL_DOCUMENTS="false")
    file = h.slack.host_file(samples.pdf_bytes([PDF_TEXT]), "spec.pdf", "application/pdf")
    await ask(h, shared(h, [file]))
    body = h.mistral.chat_requests[-1]
    content = last_user(body)["content"]
    assert content[1:] == await expected_chunks(h.slack, [file], documents=False)
    assert fm.attachments(body) == []
    assert all(c["type"] == "text" for c in content)
    assert PDF_TEXT in text_of(content[1:]) and "spec.pdf" in text_of(content[1:])


async def test_several_files_in_one_message_reach_the_model_in_their_order(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    png = samples.image_bytes("PNG", (120, 80))
    pdf = samples.pdf_bytes([PDF_TEXT])
    files = [
        h.slack.host_file(png, "screenshot.png", "image/png"),
        host_text(h, CSV_TEXT, "sales.csv", "text/csv"),
        h.slack.host_file(pdf, "spec.pdf", "application/pdf"),
        h.slack.host_file(b"PK\x03\x04" + bytes(200), "bundle.zip", "application/zip"),
    ]
    answer = await ask(h, shared(h, files))
    body = h.mistral.chat_requests[-1]
    content = last_user(body)["content"]
    assert content[0] == {"type": "text", "text": f"[Ada] {QUESTION}"}
    assert content[1:] == await expected_chunks(h.slack, files)
    assert [a.type for a in fm.attachments(body)] == ["image_url", "document_url"]
    image, document = fm.attachments(body)
    assert pixels(image.data) == pixels(png) and document.data == pdf
    assert CSV_TEXT.rstrip("\n") in text_of(content)
    # The zip is the only file left out, and the note says so.
    notes = assert_noted(answer, "bundle.zip")
    assert not any(name in notes for name in ("screenshot.png", "sales.csv", "spec.pdf"))
    assert h.slack.downloads_of(files[3]["id"]) == []  # an archive is not even downloaded
    assert_clean_requests(h)


# where files come from: DMs and threads ------------------------------------------------------------------


async def test_a_dm_with_only_a_file_is_answered_not_given_help(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    png = samples.image_bytes("PNG", (50, 40))
    file = h.slack.host_file(png, "error.png", "image/png")
    event = h.slack.file_message(DM, "U0ADA", "", [file], channel_type="im")
    answer = await ask(h, event, as_mention=False)
    assert HELP not in answer
    assert answer.startswith("You said:")
    [sent] = fm.attachments(h.mistral.chat_requests[-1])
    assert pixels(sent.data) == pixels(png)
    [download] = h.slack.downloads_of(file["id"])
    assert download.authorized


async def test_a_dm_with_a_file_and_a_question(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    file = host_text(h, CSV_TEXT, "sales.csv", "text/csv")
    event = h.slack.file_message(DM, "U0ADA", "sum the amounts", [file], channel_type="im")
    await ask(h, event, as_mention=False)
    content = last_user(h.mistral.chat_requests[-1])["content"]
    assert content[0] == {"type": "text", "text": "[Ada] sum the amounts"}
    assert content[1:] == await expected_chunks(h.slack, [file])


async def test_a_follow_up_with_a_file_in_the_bots_thread_brings_the_file(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    root = h.slack.user_message(CHANNEL, "U0ADA", mention("my deploy failed"))
    await ask(h, root)
    log = host_text(h, "INFO start\nERROR exit code 137\n", "deploy.log")
    follow = h.slack.file_message(CHANNEL, "U0BOB", "here is the log", [log], thread_ts=root["ts"])
    await ask(h, follow, as_mention=False)
    assert len(h.mistral.chat_requests) == 2
    content = last_user(h.mistral.chat_requests[-1])["content"]
    assert content[0] == {"type": "text", "text": "[Bob] here is the log"}
    assert content[1:] == await expected_chunks(h.slack, [log])
    assert len(h.slack.bot_replies(CHANNEL, root["ts"])) == 2


async def test_later_turns_still_see_earlier_files(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    png = samples.image_bytes("PNG", (90, 60))
    image = h.slack.host_file(png, "chart.png", "image/png")
    text = host_text(h, CSV_TEXT, "sales.csv", "text/csv")
    first = shared(h, [image, text])
    await ask(h, first)
    [first_image] = fm.attachments(h.mistral.chat_requests[0])
    assert len(h.slack.downloads_of(image["id"])) == 1

    follow = h.slack.user_message(CHANNEL, "U0ADA", "and which city sold most?", thread_ts=first["ts"])
    await ask(h, follow, as_mention=False)
    assert len(h.mistral.chat_requests) == 2
    sent = h.mistral.chat_requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    earlier = sent[1]["content"]
    assert isinstance(earlier, list), "the earlier question lost its files"
    assert earlier[0] == {"type": "text", "text": f"[Ada] {QUESTION}"}
    assert CSV_TEXT.rstrip("\n") in text_of(earlier) and "sales.csv" in text_of(earlier)
    [again] = fm.attachments(h.mistral.chat_requests[-1])
    assert again.type == "image_url" and pixels(again.data) == pixels(first_image.data)
    # The follow-up itself carries no files.
    now = sent[-1]["content"]
    assert chunks_of(now) == [{"type": "text", "text": "[Ada] and which city sold most?"}]
    # At most one more download of the image (for the turn that needs it again), with the token; the text
    # file's stored text serves the later turn.
    downloads = h.slack.downloads_of(image["id"])
    assert 1 <= len(downloads) <= 2 and all(d.authorized for d in downloads)
    assert len(h.slack.downloads_of(text["id"])) == 1
    assert_clean_requests(h)


async def test_earlier_files_survive_a_restart(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    png = samples.image_bytes("PNG", (90, 60))
    image = h.slack.host_file(png, "chart.png", "image/png")
    text = host_text(h, UTF8_TEXT, "greeting.txt")
    first = shared(h, [image, text])
    await ask(h, first)
    await h.stop()
    await h.start()
    follow = h.slack.user_message(CHANNEL, "U0ADA", "translate it", thread_ts=first["ts"])
    await ask(h, follow, as_mention=False)
    earlier = h.mistral.chat_requests[-1]["messages"][1]["content"]
    assert isinstance(earlier, list)
    assert UTF8_TEXT.rstrip("\n") in text_of(earlier)
    [again] = fm.attachments(h.mistral.chat_requests[-1])
    assert pixels(again.data) == pixels(png)
    assert all(d.authorized for d in h.slack.downloads_of(image["id"]))


# faults: each file left out or cut gets a note naming it; the question is still answered ----------------


async def test_an_unsupported_file_is_noted_and_the_question_answered(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    file = h.slack.host_file(b"PK\x03\x04" + bytes(500), "archive.zip", "application/zip")
    answer = await ask(h, shared(h, [file]))
    assert answer.startswith(f"You said: [Ada] {QUESTION}")
    assert_noted(answer, "archive.zip")
    assert h.slack.downloads_of(file["id"]) == []
    assert (await statuses(h))[-1][0] == "complete"
    assert_no_traceback(h)


@pytest.mark.parametrize("how", ["deleted after sharing", "a tombstone in the event"])
async def test_a_deleted_file_is_noted(http_harness: Harness, how: str) -> None:
    h = http_harness
    await h.start()
    file = host_text(h, "gone soon\n", "gone.txt")
    tombstone = h.slack.delete_file(file["id"])
    answer = await ask(h, shared(h, [file if how == "deleted after sharing" else tombstone]))
    assert answer.startswith(f"You said: [Ada] {QUESTION}")
    # A tombstone carries no name: the note can only say that a file was deleted.
    notes = assert_noted(answer, "gone.txt") if how == "deleted after sharing" else assert_noted(answer)
    assert "deleted" in notes
    assert h.slack.downloads_of(file["id"]) == [] or how == "deleted after sharing"
    assert "gone soon" not in text_of(last_user(h.mistral.chat_requests[-1])["content"])
    assert_no_traceback(h)
    await still_serving(h)


async def test_a_sign_in_page_instead_of_the_file_is_noted_not_sent(http_harness: Harness) -> None:
    """Slack answers a token without files:read with 200 and its HTML sign-in page, not the file."""
    h = http_harness
    await h.start()
    file = host_text(h, "secret numbers\n", "report.txt")
    hosted = h.slack.hosted_files[file["id"]]
    hosted.data, hosted.content_type = SIGN_IN_PAGE.encode(), "text/html"
    answer = await ask(h, shared(h, [file]))
    assert answer.startswith(f"You said: [Ada] {QUESTION}")
    notes = assert_noted(answer, "report.txt")
    assert "files:read" in notes  # what an admin can do about it
    raw = json.dumps(h.mistral.chat_requests[-1])
    assert "Sign in" not in raw and "<html" not in raw
    assert_no_traceback(h)


async def test_a_file_over_max_file_mb_is_noted_and_the_others_are_read(http_harness: Harness) -> None:
    h = http_harness
    await h.start(MAX_FILE_MB="1")
    big = h.slack.host_file(b"x" * (3 * MB // 2) + b"\n", "big.txt", "text/plain")
    small = host_text(h, CSV_TEXT, "small.csv", "text/csv")
    answer = await ask(h, shared(h, [big, small]))
    notes = assert_noted(answer, "big.txt")
    assert "1 MB" in notes and "small.csv" not in notes
    content = last_user(h.mistral.chat_requests[-1])["content"]
    assert CSV_TEXT.rstrip("\n") in text_of(content)
    assert "x" * 1000 not in text_of(content)
    assert sum(d.bytes_sent for d in h.slack.downloads_of(big["id"])) < MB


@pytest.mark.parametrize(
    "claimed,chunked",
    [(None, False), (1_000, False), (1_000, True)],
    ids=["its size says so", "its Content-Length says so", "only its bytes say so"],
)
async def test_a_50_mb_file_is_refused_before_it_is_fully_downloaded(
    http_harness: Harness, claimed: int | None, chunked: bool
) -> None:
    h = http_harness
    await h.start()
    file = h.slack.host_file(b"A" * (50 * MB), "huge.log", "text/plain", size=claimed, chunked=chunked)
    answer = await ask(h, shared(h, [file]))
    assert answer.startswith(f"You said: [Ada] {QUESTION}")
    notes = assert_noted(answer, "huge.log")
    assert "20 MB" in notes
    downloads = h.slack.downloads_of(file["id"])
    assert all(d.authorized and not d.complete for d in downloads)
    # Far below 50 MB: the reader stopped at the cap (20 MB), and the socket buffers of both ends (a few MB
    # each on loopback) held what the fake had written past it.
    assert sum(d.bytes_sent for d in downloads) < 40 * MB
    assert "AAAA" not in json.dumps(h.mistral.chat_requests[-1])
    assert_no_traceback(h)


@pytest.mark.parametrize(
    "data,name,mimetype",
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "broken.png", "image/png"),
        (samples.image_bytes("PNG", (64, 48))[:120], "truncated.png", "image/png"),
        (b"\xff\xd8\xff\xe0" + bytes(64), "broken.jpg", "image/jpeg"),
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\ngarbage", "broken.pdf", "application/pdf"),
        (b"this is not a pdf at all", "fake.pdf", "application/pdf"),
    ],
)
async def test_a_corrupt_image_or_pdf_is_noted_and_not_sent(
    http_harness: Harness, data: bytes, name: str, mimetype: str
) -> None:
    h = http_harness
    await h.start()
    file = h.slack.host_file(data, name, mimetype)
    answer = await ask(h, shared(h, [file]))
    assert answer.startswith(f"You said: [Ada] {QUESTION}")
    assert_noted(answer, name)
    assert fm.attachments(h.mistral.chat_requests[-1]) == []  # the model never got the broken bytes
    assert (await statuses(h))[-1][0] == "complete"
    assert_no_traceback(h)


async def test_more_images_than_the_limit_are_noted(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    limit = FileLimits().max_images
    files = [
        h.slack.host_file(samples.image_bytes("PNG", (30 + i, 20)), f"shot{i}.png", "image/png")
        for i in range(1, limit + 2)
    ]
    answer = await ask(h, shared(h, files))
    sent = fm.attachments(h.mistral.chat_requests[-1])
    assert [image_of(a).size for a in sent] == [(30 + i, 20) for i in range(1, limit + 1)]
    notes = assert_noted(answer, f"shot{limit + 1}.png")
    assert "shot1.png" not in notes
    assert h.slack.downloads_of(files[-1]["id"]) == []


async def test_a_text_file_too_long_for_the_context_is_cut_with_a_note(http_harness: Harness) -> None:
    h = http_harness
    await h.start(MISTRAL_CONTEXT_TOKENS="4000")
    lines = [f"2026-11-27T10:{i // 60:02d}:{i % 60:02d} INFO request {i} served" for i in range(3000)]
    lines.append("2026-11-27T11:00:00 FATAL out of memory")
    file = host_text(h, "\n".join(lines) + "\n", "server.log")
    answer = await ask(h, shared(h, [file]))
    assert answer.startswith(f"You said: [Ada] {QUESTION}")
    assert_noted(answer, "server.log")
    sent = text_of(last_user(h.mistral.chat_requests[-1])["content"])
    assert lines[0] in sent and "FATAL out of memory" in sent  # a log keeps its start and its end
    assert lines[1500] not in sent


async def test_files_off_slacks_hosts_are_never_requested(http_harness: Harness) -> None:
    """A file object pointing elsewhere is refused; a Slack file URL in the message text is not followed."""
    h = http_harness
    requests: list[str] = []

    async def record(request: web.Request) -> web.Response:
        requests.append(request.headers.get("Authorization", ""))
        return web.Response(body=samples.image_bytes("PNG", (10, 10)), content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    elsewhere = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        await h.start()
        foreign = {
            **h.slack.host_file(samples.image_bytes("PNG", (10, 10)), "elsewhere.png", "image/png"),
            "url_private": f"{elsewhere}/elsewhere.png",
            "url_private_download": f"{elsewhere}/download/elsewhere.png",
        }
        linked = h.slack.host_file(b"linked only\n", "linked.txt", "text/plain")
        text = f"{QUESTION} also see <{linked['url_private_download']}>"
        answer = await ask(h, shared(h, [foreign], text=text))
        assert requests == []  # the bot token never left for another host
        assert_noted(answer, "elsewhere.png")
        assert h.slack.downloads_of(linked["id"]) == []
        assert h.slack.downloads_of(foreign["id"]) == []
        assert fm.attachments(h.mistral.chat_requests[-1]) == []
    finally:
        await runner.cleanup()


async def test_a_model_that_refuses_images_gets_a_note_naming_them(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    h.mistral.refuse_images = True
    files = [
        h.slack.host_file(samples.image_bytes("PNG", (40, 30)), "first.png", "image/png"),
        h.slack.host_file(samples.image_bytes("JPEG", (40, 30)), "second.jpg", "image/jpeg"),
    ]
    event = shared(h, files)
    await h.deliver(h.slack.as_mention(event))
    await h.deliver(event)
    await h.settle(timeout=30)
    shown = "\n".join(r.text for r in h.slack.bot_replies(CHANNEL, event["ts"]))
    assert "_⚠️" in shown
    assert "first.png" in shown and "second.jpg" in shown
    assert (await statuses(h))[-1][0] == "failed"
    assert_no_traceback(h)
    h.mistral.refuse_images = False
    await still_serving(h)


# settings and /ask ---------------------------------------------------------------------------------------


async def test_ask_usage_says_files_need_a_mention(http_harness: Harness) -> None:
    h = http_harness
    await h.start()
    for text in ("", "help"):
        shown = (await h.command("/ask", text, user="U0ADA", channel=CHANNEL)).get("text", "")
        assert "file" in shown.lower() and "mention" in shown.lower(), shown
    assert h.mistral.chat_requests == []


@pytest.mark.parametrize(
    "setting,value", [("MAX_FILE_MB", "lots"), ("MAX_FILE_MB", "-1"), ("MISTRAL_DOCUMENTS", "maybe")]
)
async def test_a_malformed_file_setting_stops_start_up_naming_it(
    http_harness: Harness, setting: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=setting):
        await http_harness.start(**{setting: value})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_the_fakes_file_url_demands_the_token(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    """The ground the tests above stand on: without the bot token the fake answers a sign-in page."""
    file = slack.host_file(b"private\n", "private.txt", "text/plain")
    async with session.get(file["url_private_download"]) as response:
        assert response.content_type == "text/html" and "Sign in" in await response.text()
    headers = {"Authorization": f"Bearer {fs.BOT_TOKEN}"}
    async with session.get(file["url_private_download"], headers=headers) as response:
        assert await response.read() == b"private\n"
