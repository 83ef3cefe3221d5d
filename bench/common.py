"""What every benchmark shares: the fakes with Slack's tiers, the bot as its own process, its /proc figures.

The bot runs as `python -m bot` (optionally under a wrapper such as valgrind) in HTTP mode (signed Events API
posts to its port) or Socket Mode (envelopes on the fake's websocket). Everything talks to 127.0.0.1 only.
`Replicas` runs several such processes for one workspace (each on its own port, or its own websocket).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes import mistral as fm  # noqa: E402
from tests.fakes import slack as fs  # noqa: E402

# Slack's documented rate limits (api.slack.com/apis/rate-limits), enforced by the fake with 429 + Retry-After.
TIERS = {
    "chat.update": (50, 60.0),  # Tier 3
    "chat.delete": (50, 60.0),  # Tier 3
    "chat.startStream": (20, 60.0),  # Tier 2
    "chat.stopStream": (20, 60.0),  # Tier 2
    "chat.appendStream": (100, 60.0),  # Tier 4
    "users.info": (100, 60.0),  # Tier 4
}
PER_CHANNEL = {"chat.postMessage": (10, 10.0)}  # about one a second per channel, short bursts allowed
CHANNELS = 8
CHUNK_CHARS = 6
USER = "U0ADA"
SLACK_MODES = ("http", "socket")
ACK_DEADLINE = 3.0  # Slack retries an event it has no ack for after 3 s
ACK_LIMIT = 60.0  # how long the benchmark waits for an ack before it counts the event as lost


class BenchError(Exception):
    """A run could not be measured (the bot did not start, or died); the message says why."""


# /proc ------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the whole process (every thread, finished ones included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(pid: int) -> int:
    """Voluntary context switches of the process's live threads: how often it went idle and was woken again.

    On these VMs each wake-up costs tens of microseconds of CPU, at a price that differs from machine to machine;
    the count is the bot's own doing. Threads that have exited take their counts with them (the bot's are
    long-lived).
    """
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # the thread exited meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("voluntary_ctxt_switches:"))
    return total


def status_mb(pid: int, key: str) -> float:
    """A memory line of /proc/PID/status in MB: `VmHWM` (peak resident) or `VmRSS` (resident now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# small helpers ----------------------------------------------------------------------------------------------


def answer_text(chars: int, i: int) -> str:
    # Plain words: the same in Markdown and in Slack's mrkdwn, so completeness is a string comparison.
    words: list[str] = []
    n = 0
    while n < chars:
        word = f"answer{i}word{len(words)}"
        words.append(word)
        n += len(word) + 1
    return " ".join(words)


def script_for(text: str, pace: float) -> fm.Script:
    """The model's stream of `text`: CHUNK_CHARS characters at a time, `pace` characters a second."""
    chunks = [text[j : j + CHUNK_CHARS] for j in range(0, len(text), CHUNK_CHARS)]
    return fm.Script(chunks=chunks, delay=CHUNK_CHARS / pace)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def wait_for(predicate: Callable[[], object], limit: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it holds (True) or `limit` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())


def median(values: Sequence[float]) -> float:
    real = [v for v in values if v == v]  # NaN (a run with no value) is left out
    return statistics.median(real) if real else float("nan")


def question(i: int) -> str:
    return f"question {i}"


def bot_sources() -> str:
    """Which bot was measured: git's HEAD, whether bot/ differs from it, and a hash of bot/'s sources."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "bot").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = " + uncommitted changes" if git("status", "--porcelain", "--", "bot") else ""
    return f"git {head}{changed}, bot/*.py sha256 {digest.hexdigest()[:12]}"


# the fakes --------------------------------------------------------------------------------------------------


async def start_fakes(*, tiers: bool = True) -> tuple[fs.FakeSlack, fm.FakeMistral]:
    slack, model = fs.FakeSlack(), fm.FakeMistral()
    await slack.start()
    await model.start()
    if tiers:
        slack.limits = dict(TIERS)
        slack.channel_limits = dict(PER_CHANNEL)
    return slack, model


async def stop_fakes(slack: fs.FakeSlack, model: fm.FakeMistral) -> None:
    await slack.stop()
    await model.stop()


def mention(slack: fs.FakeSlack, channel: str, text: str) -> dict[str, Any]:
    """A person's channel mention of the bot, as the `app_mention` event Slack delivers."""
    return slack.as_mention(slack.user_message(channel, USER, f"<@{fs.BOT_USER}> {text}"))


def shown_texts(slack: fs.FakeSlack, threads: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """What a person sees from the bot in each of `threads` ((channel, thread ts)): its replies, joined.

    One pass over the fake's messages for all threads (the fake's own helpers scan every message for each
    thread, which at 64 threads polled 50 times a second takes a good share of a core from the bot).
    """
    parts: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for m in slack.messages.values():
        if m.user != fs.BOT_USER or m.thread_ts is None or m.ts == m.thread_ts:
            continue
        key = (m.channel, m.thread_ts)
        if key in threads:
            parts.setdefault(key, []).append((m.ts, m.text))
    return {k: " ".join(text for _, text in sorted(v)).strip() for k, v in parts.items()}


def open_streams(slack: fs.FakeSlack, threads: set[tuple[str, str]]) -> int:
    """Native streams in `threads` not stopped yet (Slack still shows them as being written)."""
    return sum(m.streaming and (m.channel, m.thread_ts or "") in threads for m in slack.messages.values())


def stream_close_s(message: fs.Message) -> float:
    """From a stopped stream showing its whole text to its chat.stopStream (NaN: not a stopped stream)."""
    if not message.stream_started or message.streaming:
        return float("nan")
    return message.changed_at[-1] - message.changed_at[message.history.index(message.text)]


# the bot ----------------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    sent_at: float
    ack_s: float = float("nan")  # NaN: no ack within ACK_LIMIT (or an error status)
    status: str = ""


@dataclass
class BotProcess:
    """`python -m bot` in its own process, wired to the fakes in HTTP or Socket Mode."""

    slack: fs.FakeSlack
    model: fm.FakeMistral
    slack_mode: str
    streaming: str
    workdir: str
    wrapper: Sequence[str] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    port: int = 0
    spawned_at: float = 0.0
    listening_at: float = float("nan")
    # Socket Mode with several connections at the fake (replicas): the id of the one this bot's events go on.
    # None: the fake's choice (round robin over the open ones; with one bot, its own).
    connection: int | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def startup_s(self) -> float:
        return self.listening_at - self.spawned_at

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": fs.BOT_TOKEN,
            "SLACK_API_URL": self.slack.api_url,
            "MISTRAL_API_KEY": fm.API_KEY,
            "MISTRAL_BASE_URL": self.model.url,
            "DATABASE_URL": f"sqlite:///{self.workdir}/bench.db",
            "LOG_LEVEL": "WARNING",
            "SLACK_STREAMING": self.streaming,
            "PERSONAS_FILE": f"{self.workdir}/none.toml",
            # Every figure is taken before the stop: answers still owed a call then need not hold it up.
            "SHUTDOWN_GRACE_SECONDS": "5",
            **self.extra_env,
        }
        for name in ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "PORT"):
            env.pop(name, None)
        if self.slack_mode == "socket":
            env["SLACK_APP_TOKEN"] = fs.APP_TOKEN
        else:
            self.port = free_port()
            env["SLACK_SIGNING_SECRET"] = fs.SIGNING_SECRET
            env["PORT"] = str(self.port)
        return env

    async def spawn(self, limit: float) -> None:
        """Start the bot and wait until it listens (HTTP: its port is open; Socket Mode: the websocket is up)."""
        await self.launch()
        await self.wait_listening(limit)

    async def launch(self) -> None:
        """Start the bot's process, without waiting for it to listen (`wait_listening` does)."""
        env = self.environment()
        self.spawned_at = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            *self.wrapper, sys.executable, "-m", "bot", env=env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL
        )

    async def wait_listening(self, limit: float, listening: Awaitable[object] | None = None) -> None:
        """Wait until the launched bot listens: `listening` when given (it ends when the bot listens), else its
        port (HTTP) or a Socket Mode connection to the fake. BenchError if it exits first or takes over `limit` s."""
        assert self.process is not None
        exited = asyncio.ensure_future(self.process.wait())
        if listening is None:
            if self.slack_mode == "socket":
                listening = self.slack.socket_connected(limit)
            else:
                listening = wait_for(lambda: port_open(self.port), limit, 0.01)
        waiting = asyncio.ensure_future(listening)
        try:
            await asyncio.wait({exited, waiting}, timeout=limit + 1, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                raise BenchError(f"the bot exited with status {self.process.returncode} before it listened")
            ok = waiting.done() and not waiting.cancelled() and waiting.exception() is None
            if not ok or waiting.result() is False:
                raise BenchError(f"the bot was not listening after {limit:.0f} s ({self.slack_mode} mode)")
            self.listening_at = time.monotonic()
        finally:
            for task in (exited, waiting):
                task.cancel()
            await asyncio.gather(exited, waiting, return_exceptions=True)

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def deliver(self, event: dict[str, Any]) -> Delivery:
        """Deliver one event as Slack would in this mode, and time the app's acknowledgement."""
        delivery = Delivery(time.monotonic())
        try:
            if self.slack_mode == "socket":
                chosen = {} if self.connection is None else {"connection": self.connection}
                await self.slack.send_envelope("events_api", self.slack.envelope(event), timeout=ACK_LIMIT, **chosen)
                delivery.status = "ack"
            else:
                url = f"http://127.0.0.1:{self.port}/slack/events"
                status, _ = await asyncio.wait_for(self.slack.deliver_http(url, event), ACK_LIMIT)
                delivery.status = str(status)
                if status != 200:
                    return delivery
        except Exception as exc:  # a lost event is a result to count, not a crash
            delivery.status = type(exc).__name__
            return delivery
        delivery.ack_s = time.monotonic() - delivery.sent_at
        return delivery

    async def deliver_all(self, events: Sequence[dict[str, Any]]) -> list[Delivery]:
        """Deliver `events` at once: concurrent posts (HTTP) or concurrent envelopes on the one websocket."""
        return list(await asyncio.gather(*(self.deliver(e) for e in events)))

    async def stop(self, grace: float = 60.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            print(f"  the bot did not stop within {grace:.0f} s of SIGTERM; killing it", file=sys.stderr)
            self.process.kill()
            await self.process.wait()


def socket_replicas_supported() -> bool:
    """Whether the fake Slack holds several Socket Mode connections (one per replica) and sends on a chosen one."""
    connected = inspect.signature(fs.FakeSlack.socket_connected).parameters
    send = inspect.signature(fs.FakeSlack.send_envelope).parameters
    return "count" in connected and "connection" in send


@dataclass
class Replicas:
    """Several `python -m bot` processes serving one workspace (on one database), as replicas behind a load
    balancer: spawned together, each question delivered to the next replica in turn.

    HTTP: each replica listens on its own port. Socket Mode: each opens its own websocket to the fake, and
    the events go round robin over those connections (one per replica; which connection is which replica's
    is not known, nor needed: each gets every N-th event).
    """

    bots: list[BotProcess]

    def __len__(self) -> int:
        return len(self.bots)

    @property
    def alive(self) -> bool:
        return all(bot.alive for bot in self.bots)

    def dead(self) -> str:
        """Which replicas exited, with their status ("" when all run)."""
        return ", ".join(f"replica {i + 1} (status {b.returncode})" for i, b in enumerate(self.bots) if not b.alive)

    @property
    def startup_s(self) -> float:
        """The slowest replica's start-up: from its spawn to its listening."""
        return max(bot.startup_s for bot in self.bots)

    async def spawn(self, limit: float) -> None:
        """Spawn every replica at once and wait until all listen; BenchError as soon as one fails."""
        for bot in self.bots:
            await bot.launch()
        slack = self.bots[0].slack
        socket = self.bots[0].slack_mode == "socket" and len(self.bots) > 1
        # Socket Mode: a replica is taken as listening once every replica's websocket is up (the fake cannot
        # tell whose a connection is), so each one's start-up is the slowest one's.
        connected = asyncio.ensure_future(slack.socket_connected(limit, count=len(self.bots))) if socket else None
        waits = [
            asyncio.ensure_future(bot.wait_listening(limit, None if connected is None else asyncio.shield(connected)))
            for bot in self.bots
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_EXCEPTION)
            for i, task in enumerate(waits):
                if task.done() and task.exception() is not None:
                    raise BenchError(f"replica {i + 1} of {len(self.bots)}: {task.exception()}")
        finally:
            for task in [*waits, *([connected] if connected else [])]:
                task.cancel()
            await asyncio.gather(*waits, *([connected] if connected else []), return_exceptions=True)
        if socket:
            ids = slack.socket_connections
            if len(ids) < len(self.bots):
                raise BenchError(f"{len(ids)} Socket Mode connections open for {len(self.bots)} replicas")
            for bot, connection in zip(self.bots, ids, strict=False):
                bot.connection = connection

    async def deliver_all(self, events: Sequence[dict[str, Any]]) -> list[Delivery]:
        """Deliver `events` at once, event i to replica i mod N; the deliveries in the order of `events`."""
        n = len(self.bots)
        return list(await asyncio.gather(*(self.bots[i % n].deliver(e) for i, e in enumerate(events))))

    async def warm_up(self, limit: float) -> None:
        """One unmeasured question per replica (each its own first connections and first turn), all at once."""
        await asyncio.gather(*(warm_up(bot, limit) for bot in self.bots))

    async def stop(self, grace: float = 60.0) -> None:
        await asyncio.gather(*(bot.stop(grace) for bot in self.bots))


async def warm_up(bot: BotProcess, limit: float) -> None:
    """One question, not measured: the first Web API connection, the model's context size, the first turn."""
    bot.model.queue(fm.Script(chunks=["warm"]))
    event = mention(bot.slack, "C0WARM", "warm up")
    await bot.deliver(event)
    key = {("C0WARM", event["ts"])}
    if not await wait_for(lambda: shown_texts(bot.slack, key).get(("C0WARM", event["ts"])) == "warm", limit, 0.05):
        raise BenchError(f"the warm-up question got no answer within {limit:.0f} s")
