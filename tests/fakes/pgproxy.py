"""A TCP proxy on 127.0.0.1 in front of the PostgreSQL server, to stage a database outage on demand.

The bot connects through the proxy (`proxy.url(database_url)`); `down()` then does to every connection what a
server restart does: all of them close at once, and new ones are refused (closed right after accept) until
`up()`. The machine's server is never touched, so other tests and sessions on it carry on.

    proxy = PgProxy()
    await proxy.start()
    url = proxy.url(database_url)
    ...
    await proxy.outage(2.0)  # or proxy.down() ... proxy.up()
    await proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

UPSTREAM = ("127.0.0.1", 5432)


@dataclass(eq=False)  # hashed by identity, kept in a set
class _Link:
    """One client connection and its connection to the server, with the two tasks copying between them."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def cut(self) -> None:
        """Close both sides at once (abort: no lingering buffered bytes, as when a server process exits)."""
        for writer in (self.client, self.server):
            writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class PgProxy:
    """Forwards 127.0.0.1:`port` to the PostgreSQL server; `down()`/`up()`/`outage()` stage a restart."""

    def __init__(self, upstream: tuple[str, int] = UPSTREAM) -> None:
        self.upstream = upstream
        self.port = 0
        self.is_down = False
        self.accepted = 0  # connections forwarded to the server
        self.refused = 0  # connections closed at once because the proxy was down (or the server out of reach)
        self.cut = 0  # open connections closed by down()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def url(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by the proxy's (user, database and options kept)."""
        parts = urlsplit(database_url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        return len(self._links)

    def down(self) -> None:
        """The server goes away: every open connection closes at once and new ones are refused until `up()`."""
        self.is_down = True
        self._cut_all()

    def up(self) -> None:
        """The server is back: new connections go through again."""
        self.is_down = False

    async def outage(self, seconds: float) -> None:
        """`down()`, `seconds` of refusing every connection, then `up()`."""
        self.down()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.up()

    def _cut_all(self) -> None:
        for link in list(self._links):
            link.cut()
            self.cut += 1
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        if self.is_down:  # went down while connecting
            self.refused += 1
            writer.transport.abort()
            server_writer.transport.abort()
            return
        self.accepted += 1
        link = _Link(writer, server_writer)
        self._links.add(link)
        link.pumps = [
            asyncio.create_task(self._pump(reader, server_writer)),
            asyncio.create_task(self._pump(server_reader, writer)),
        ]
        try:
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.cut()  # one side closed: close the other (a no-op after down())
            self._links.discard(link)
            await asyncio.gather(*link.pumps, return_exceptions=True)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
