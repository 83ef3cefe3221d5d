"""Downloads against the fake Slack over 127.0.0.1: the token, the sign-in page, deletions, the size cap, hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.files.download import DownloadError, DownloadProblem, allowed_url, download, file_info
from bot.files.kinds import SlackFile
from tests.conftest import until
from tests.fakes import mistral as fm
from tests.fakes import slack as fs

MB = 1024 * 1024
API = "https://slack.com/api/"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Bystander:
    """A server on another port that records every request: where a token must never go."""

    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        return web.Response(body=b"\x89PNG stolen", content_type="image/png")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def bystander() -> AsyncIterator[Bystander]:
    server = Bystander()
    await server.start()
    yield server
    await server.stop()


async def fetch(
    session: aiohttp.ClientSession, slack: fs.FakeSlack, obj: dict[str, Any], *, max_bytes: int = 20 * MB, **kw: Any
) -> bytes:
    return await download(
        session, SlackFile.parse(obj), token=kw.pop("token", fs.BOT_TOKEN), api_url=slack.api_url, max_bytes=max_bytes
    )


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("https://files.slack.com/files-pri/T1-F1/download/a.png", True),
        ("https://files-origin.slack.com/files-pri/T1-F1/a.png", True),
        ("https://acme.slack.com/files-pri/T1-F1/a.png", True),
        ("https://a.slack-edge.com/x.png", True),
        ("https://slack.com/files-pri/T1-F1/a.png", True),  # the Web API's own origin
        ("http://files.slack.com/files-pri/T1-F1/a.png", False),  # no token in clear text
        ("https://files.slack.com:8443/a.png", False),
        ("https://files.slack.com.evil.example/a.png", False),
        ("https://evilslack.com/a.png", False),
        ("https://files.slack.com@evil.example/a.png", False),  # user info: the host is evil.example
        ("https://evil.example/?u=https://files.slack.com/a.png", False),
        ("https://127.0.0.1/a.png", False),
        ("ftp://files.slack.com/a.png", False),
        ("/files-pri/T1-F1/a.png", False),
        ("not a url", False),
    ],
)
def test_allowed_url(url: str, allowed: bool) -> None:
    assert (allowed_url(url, api_url=API) is not None) == allowed


def test_the_configured_api_origin_is_allowed_port_and_scheme_included() -> None:
    api = "http://127.0.0.1:8123/api/"
    assert allowed_url("http://127.0.0.1:8123/files-pri/T-F/x", api_url=api) is not None
    assert allowed_url("http://127.0.0.1:8124/files-pri/T-F/x", api_url=api) is None
    assert allowed_url("https://127.0.0.1:8123/files-pri/T-F/x", api_url=api) is None


async def test_a_file_is_downloaded_with_the_bot_token(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    data = bytes(range(256)) * 1000
    obj = slack.host_file(data, "blob.png", "image/png")
    assert await fetch(session, slack, obj) == data
    [request] = slack.downloads_of(obj["id"])
    assert request.authorized and request.complete and request.path.endswith("/download/blob.png")


async def test_url_private_serves_when_there_is_no_download_url(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    obj = slack.host_file(b"plain text", "a.txt", "text/plain")
    del obj["url_private_download"]
    assert await fetch(session, slack, obj) == b"plain text"


async def test_a_sign_in_page_means_no_access(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(b"\x89PNG fake", "a.png", "image/png")
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, obj, token="xoxb-wrong-or-without-files-read")
    assert error.value.problem is DownloadProblem.NO_ACCESS
    assert [d.authorized for d in slack.downloads_of(obj["id"])] == [False]
    assert "xoxb" not in str(error.value)


async def test_an_html_file_is_not_mistaken_for_a_sign_in_page(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    page = b"<!DOCTYPE html><html><body>my page</body></html>"
    obj = slack.host_file(page, "page.html", "text/html")
    assert await fetch(session, slack, obj) == page


async def test_a_deleted_file_is_reported(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(b"gone soon", "a.txt", "text/plain")
    slack.delete_file(obj["id"])
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, obj)
    assert error.value.problem is DownloadProblem.DELETED and error.value.status == 404


async def test_a_server_error_is_reported(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(b"x", "a.txt", "text/plain")
    slack.hosted_files[obj["id"]].fail_status = 503
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, obj)
    assert error.value.problem is DownloadProblem.HTTP_ERROR and error.value.status == 503


async def test_a_file_over_the_cap_by_its_size_is_never_requested(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    obj = slack.host_file(b"\0" * (50 * MB), "huge.mov", "video/quicktime")
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, obj)
    assert error.value.problem is DownloadProblem.TOO_LARGE
    assert slack.downloads_of(obj["id"]) == []


async def test_a_file_over_the_cap_by_its_content_length_is_not_read(
    slack: fs.FakeSlack, session: aiohttp.ClientSession
) -> None:
    obj = slack.host_file(b"\0" * (50 * MB), "liar.bin", "application/octet-stream", size=1_000)  # size lies
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, obj)
    assert error.value.problem is DownloadProblem.TOO_LARGE and "Content-Length" in error.value.detail
    [request] = slack.downloads_of(obj["id"])
    await until(lambda: request.finished, message="the fake's handler to finish")
    assert not request.complete and request.bytes_sent < 25 * MB


async def test_a_50_mb_stream_is_cut_at_the_cap(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    # No size and no Content-Length: only counting while reading can stop it.
    obj = slack.host_file(b"\0" * (50 * MB), "stream.log", "text/plain", chunked=True)
    del obj["size"]
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, obj)  # the default cap, 20 MB
    assert error.value.problem is DownloadProblem.TOO_LARGE
    [request] = slack.downloads_of(obj["id"])
    await until(lambda: request.finished, message="the fake's handler to finish")
    assert not request.complete and request.bytes_sent < 40 * MB  # the cap plus what the socket buffers held


async def test_a_small_cap_stops_reading_early(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(b"\1" * (50 * MB), "stream.bin", "image/png", chunked=True)
    del obj["size"]
    with pytest.raises(DownloadError):
        await fetch(session, slack, obj, max_bytes=MB)
    [request] = slack.downloads_of(obj["id"])
    await until(lambda: request.finished, message="the fake's handler to finish")
    assert request.bytes_sent < 20 * MB


async def test_a_file_at_exactly_the_cap_is_read(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(b"a" * 1000, "exact.txt", "text/plain", chunked=True)
    assert len(await fetch(session, slack, obj, max_bytes=1000)) == 1000


async def test_a_foreign_url_is_refused_without_a_request(
    slack: fs.FakeSlack, bystander: Bystander, session: aiohttp.ClientSession
) -> None:
    obj = slack.host_file(b"x", "a.png", "image/png")
    obj["url_private_download"] = f"{bystander.url}/files-pri/{fs.TEAM}-{obj['id']}/download/a.png"  # another port
    obj["url_private"] = obj["url_private_download"]
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, obj)
    assert error.value.problem is DownloadProblem.FOREIGN_HOST
    assert bystander.requests == [] and slack.downloads_of(obj["id"]) == []


async def test_redirects_are_followed_only_on_allowed_hosts(
    slack: fs.FakeSlack, bystander: Bystander, session: aiohttp.ClientSession
) -> None:
    target = slack.host_file(b"the real bytes", "a.txt", "text/plain")
    hop = slack.host_file(b"", "a.txt", "text/plain")
    slack.hosted_files[hop["id"]].redirect_to = target["url_private"]
    assert await fetch(session, slack, hop) == b"the real bytes"

    away = slack.host_file(b"", "b.txt", "text/plain")
    slack.hosted_files[away["id"]].redirect_to = f"{bystander.url}/steal"
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, away)
    assert error.value.problem is DownloadProblem.FOREIGN_HOST
    assert bystander.requests == []


async def test_a_file_without_a_url_is_reported(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    with pytest.raises(DownloadError) as error:
        await fetch(session, slack, {"id": "F1", "name": "a.txt"})
    assert error.value.problem is DownloadProblem.NO_URL


async def test_network_failures_are_reported(session: aiohttp.ClientSession) -> None:
    closed = fm.closed_port_url()
    obj = SlackFile.parse({"id": "F1", "name": "a.txt", "url_private": f"{closed}/files-pri/T-F1/a.txt"})
    with pytest.raises(DownloadError) as error:
        await download(session, obj, token=fs.BOT_TOKEN, api_url=f"{closed}/api/", max_bytes=MB)
    assert error.value.problem is DownloadProblem.NETWORK

    silent = fm.SilentServer()
    await silent.start()
    try:
        obj = SlackFile.parse({"id": "F1", "name": "a.txt", "url_private": f"{silent.url}/files-pri/T-F1/a.txt"})
        with pytest.raises(DownloadError) as error:
            await download(
                session,
                obj,
                token=fs.BOT_TOKEN,
                api_url=f"{silent.url}/api/",
                max_bytes=MB,
                client_timeout=aiohttp.ClientTimeout(total=0.5),
            )
        assert error.value.problem is DownloadProblem.TIMEOUT
    finally:
        await silent.stop()


async def test_files_info_completes_a_stub(slack: fs.FakeSlack, session: aiohttp.ClientSession) -> None:
    obj = slack.host_file(b"hello", "a.txt", "text/plain")
    assert (await file_info(session, obj["id"], token=fs.BOT_TOKEN, api_url=slack.api_url))["name"] == "a.txt"
    slack.delete_file(obj["id"])
    with pytest.raises(DownloadError) as error:
        await file_info(session, obj["id"], token=fs.BOT_TOKEN, api_url=slack.api_url)
    assert error.value.problem is DownloadProblem.DELETED
    with pytest.raises(DownloadError) as error:
        await file_info(session, obj["id"], token="xoxb-bad", api_url=slack.api_url)
    assert error.value.problem is DownloadProblem.NO_ACCESS
