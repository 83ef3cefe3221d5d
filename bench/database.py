"""PostgreSQL for the benchmark: an empty database of each run's own, and the server's count of its transactions.

Each run gets a database `bench_<random>` on the server of `--database` (created through a connection to the
URL's own database, dropped with its connections after the run); every replica runs on it, migrations
included, so each run starts from the empty state of a new deployment. A database rather than a schema in
the URL's database: PostgreSQL counts transactions per database (`pg_stat_database`), so in a database of
its own the count is the run's replicas' and nothing else's (the test suite uses the server's `test`
database, often while a benchmark runs). It needs the right to create databases (CREATEDB).

Round trips are counted by the server: `xact_commit + xact_rollback` of the run's database. A statement in
autocommit is one transaction, so one round trip; a transaction of several statements counts once (its
BEGIN, statements and COMMIT are several round trips), so the count is a lower bound of the round trips.
`pg_stat_statements` would count statements, but it must be preloaded when the server starts.

PostgreSQL publishes a connection's counters when the connection goes idle, at most once a second: what a
connection did within a second of its last publication waits for its next transaction or for 10 s of idleness
(PGSTAT_IDLE_INTERVAL), and a connection publishes everything as it closes. So the count before the burst is
read after `QUIET_S` without database work (warm runs wait that long after the warm-up, rather than 2.5 s),
and the count after once every replica has exited and no connection to the database is left.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.common import BenchError

SCHEMES = ("postgresql", "postgres")
QUIET_S = 10.5  # PGSTAT_IDLE_INTERVAL (10 s), and a margin
CONNECT_TIMEOUT = 10  # seconds
EXIT_LIMIT = 15.0  # seconds for the replicas' connections to close once the processes exited


def is_postgres(url: str) -> bool:
    scheme, sep, rest = url.partition("://")
    return bool(sep and rest) and scheme.lower() in SCHEMES


def where(url: str) -> str:
    """host:port of a URL, for what the benchmark prints: never the user or the password."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = "?"
    return f"{parts.hostname or 'localhost'}:{port}"


def with_database(url: str, name: str) -> str:
    """`url` with its database (the path) replaced by `name`; user, host and query parameters kept."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def one_line(error: object) -> str:
    return " ".join(str(error).split()) or type(error).__name__


async def check_server(url: str) -> str | None:
    """None when the benchmark can create its databases through `url`, else what stands in the way."""
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            cursor = await conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            row = await cursor.fetchone()
    except psycopg.Error as exc:
        return f"cannot connect to the PostgreSQL server at {where(url)}: {one_line(exc)}"
    if not row or not row[0]:
        return f"the user of --database may not create databases on {where(url)} (CREATEDB): the runs need one each"
    return None


class RunDatabase:
    """One run's database: `async with RunDatabase(url) as db`, the replicas on `db.url`; dropped at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"bench_{secrets.token_hex(6)}"
        self.url = with_database(server_url, self.name)
        self._admin: psycopg.AsyncConnection | None = None  # on the URL's database: its reads count there

    async def __aenter__(self) -> RunDatabase:
        try:
            self._admin = await psycopg.AsyncConnection.connect(
                self.server_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            )
            await self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except psycopg.Error as exc:
            await self._close()
            raise BenchError(f"cannot create the run's database on {where(self.server_url)}: {one_line(exc)}") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._admin is not None and not self._admin.closed:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
                await self._admin.execute(drop)
        except psycopg.Error as exc:
            print(f"  could not drop database {self.name}: {one_line(exc)}", file=sys.stderr, flush=True)
        finally:
            await self._close()

    async def _close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def _value(self, query: str) -> int:
        assert self._admin is not None
        try:
            cursor = await self._admin.execute(query, (self.name,))
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise BenchError(f"cannot read the server's statistics: {one_line(exc)}") from None
        return int(row[0]) if row and row[0] is not None else 0

    async def transactions(self) -> int:
        """Transactions the server counted in the run's database so far (committed and rolled back)."""
        # Each query is a transaction of its own (autocommit), so it reads the counters anew.
        return await self._value("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s")

    async def connections(self) -> int:
        return await self._value("SELECT count(*) FROM pg_stat_activity WHERE datname = %s")

    async def transactions_after_exit(self) -> int:
        """The count once no connection to the database is left (each publishes its counters as it closes).

        BenchError if connections stay open (a replica still running, or someone else on the database)."""
        deadline = time.monotonic() + EXIT_LIMIT
        left = await self.connections()
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            left = await self.connections()
        if left:
            raise BenchError(f"{left} connections to {self.name} still open {EXIT_LIMIT:.0f} s after the replicas")
        # A closing connection may leave pg_stat_activity a moment before its counters land: read until steady.
        count = await self.transactions()
        for _ in range(20):
            await asyncio.sleep(0.1)
            again = await self.transactions()
            if again == count:
                break
            count = again
        return count
