"""Real bot processes as replicas: several `python -m bot` on one database, wired to the loopback fakes.

`ReplicaSet` starts n processes in HTTP or Socket Mode on one DATABASE_URL and delivers each event to the replica
a test names, as a load balancer (HTTP) or Slack's choice of connection (Socket Mode) would. Processes can be
killed (SIGKILL), terminated (SIGTERM) and restarted. Each process's output goes to `replica-<i>.log` under the
test's directory; the logs are printed when the `async with` block fails, so pytest shows them with the failure.

    async with ReplicaSet(slack, mistral, tmp_path, "socket", database_url, 2) as replicas:
        await replicas.deliver(slack.as_mention(event), replica=0)
        await replicas.deliver(event, replica=1)

In Socket Mode the replicas connect one at a time, so the connection that opens while replica i starts is its
own (`Replica.connection`, an id of `FakeSlack.sockets`); deliveries to it go over that connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.conftest import free_port
from tests.fakes import mistral as fm
from tests.fakes import slack as fs

MODES = ("http", "socket")
START_TIMEOUT = 20.0  # seconds for a process to listen (HTTP) or connect (Socket Mode)
GRACE_SECONDS = 2  # SHUTDOWN_GRACE_SECONDS: answers in flight get this long after SIGTERM
# The bot's settings: a process starts from the test's environment without them, then gets its own.
SETTINGS_PREFIXES = ("SLACK_", "MISTRAL_", "DATABASE_")
SETTINGS = {"PORT", "SYSTEM_PROMPT", "PERSONAS_FILE", "PERSONA_ADMINS", "LOG_LEVEL", "SHUTDOWN_GRACE_SECONDS"}
LOG_TAIL = 20_000  # characters of each log printed on failure


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def clean_environment() -> dict[str, str]:
    """The test process's environment without any setting of the bot's (a developer's shell may have some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES) and k not in SETTINGS}


class Replica:
    """One `python -m bot` process of a `ReplicaSet` (a new process on each start; the index stays)."""

    def __init__(self, index: int, mode: str, workdir: Path, env: dict[str, str]) -> None:
        self.index = index
        self.mode = mode
        self.workdir = workdir
        self.log_path = workdir.parent / f"replica-{index}.log"
        self.env = env
        self.port = int(env["PORT"]) if mode == "http" else 0
        self.process: asyncio.subprocess.Process | None = None
        self.connection: int | None = None  # Socket Mode: the id of its connection on the fake Slack
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, f"replica {self.index} was never started"
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def spawn(self) -> None:
        """Start the process; its output is appended to `log_path`."""
        self.starts += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"--- replica {self.index}, start {self.starts} ({self.mode} mode) ---\n")
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                env=self.env,
                cwd=self.workdir,  # no .env of the repository's is read
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.connection = None

    async def wait(self, timeout: float) -> int | None:
        """The exit status once the process has exited within `timeout` s, else None."""
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return None


class ReplicaSet:
    """n real bot processes on one database, each delivered to by index (see the module's docstring)."""

    def __init__(
        self,
        slack: fs.FakeSlack,
        mistral: fm.FakeMistral,
        tmp_path: Path,
        mode: str,
        database_url: str,
        n: int = 2,
        **extra_env: str,
    ) -> None:
        assert mode in MODES, mode
        self.slack = slack
        self.mistral = mistral
        self.tmp_path = tmp_path
        self.mode = mode
        self.database_url = database_url
        self.replicas = [Replica(i, mode, tmp_path / f"replica-{i}", self._environment(extra_env)) for i in range(n)]
        self._claimed: set[int] = set()  # Socket Mode connection ids already matched to a replica

    def _environment(self, extra_env: dict[str, str]) -> dict[str, str]:
        env = {
            **clean_environment(),
            "SLACK_BOT_TOKEN": fs.BOT_TOKEN,
            "SLACK_API_URL": self.slack.api_url,
            "MISTRAL_API_KEY": fm.API_KEY,
            "MISTRAL_BASE_URL": self.mistral.url,
            "DATABASE_URL": self.database_url,
            "LOG_LEVEL": "INFO",
            "SLACK_STREAMING": "update",
            "PERSONAS_FILE": str(self.tmp_path / "no-personas.toml"),  # never written: no personas
            "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            "MISTRAL_RETRY_BUDGET": "5",
        }
        if self.mode == "socket":
            env["SLACK_APP_TOKEN"] = fs.APP_TOKEN
        else:
            env["SLACK_SIGNING_SECRET"] = fs.SIGNING_SECRET
            env["PORT"] = str(free_port())  # kept across restarts: replica i is always at the same address
        return {**env, **extra_env}

    def __len__(self) -> int:
        return len(self.replicas)

    def __getitem__(self, index: int) -> Replica:
        return self.replicas[index]

    # starting and stopping ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every replica and wait until each listens (Socket Mode: one at a time, to tell them apart)."""
        if self.mode == "http":
            await asyncio.gather(*(self._start(r) for r in self.replicas))
        else:
            for replica in self.replicas:
                await self._start(replica)

    async def __aenter__(self) -> ReplicaSet:
        try:
            await self.start()
        except BaseException:
            await self.stop_all()
            self.print_logs()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_all()
        if exc is not None:
            self.print_logs()

    async def _start(self, replica: Replica) -> None:
        assert not replica.alive, f"replica {replica.index} is running"
        await replica.spawn()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening(replica):
            if not replica.alive:
                await replica.wait(1)
                raise AssertionError(
                    f"replica {replica.index} exited with status {replica.returncode} before it listened; "
                    f"its log:\n{replica.log()[-LOG_TAIL:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"replica {replica.index} was not listening after {START_TIMEOUT:.0f} s ({self.mode} mode); "
                    f"its log:\n{replica.log()[-LOG_TAIL:]}"
                )
            await asyncio.sleep(0.02)

    def _listening(self, replica: Replica) -> bool:
        """HTTP: its port accepts connections. Socket Mode: a connection no other replica claimed has opened."""
        if self.mode == "http":
            return port_open(replica.port)
        fresh = [c for c in self.slack.socket_connections if c not in self._claimed]
        if not fresh:
            return False
        replica.connection = fresh[0]
        self._claimed.add(fresh[0])
        return True

    async def kill(self, index: int) -> int:
        """SIGKILL: the process dies at once, mid-answer or not; returns its exit status (-9)."""
        replica = self.replicas[index]
        assert replica.process is not None
        if replica.alive:
            replica.process.kill()
        return await replica.process.wait()

    async def terminate(self, index: int, timeout: float = GRACE_SECONDS + 15) -> int:
        """SIGTERM, as a platform stopping an instance; returns the exit status (the bot's own is 0).

        A process that has not exited after `timeout` s is killed and the test fails, with its log.
        """
        replica = self.replicas[index]
        assert replica.process is not None
        if replica.alive:
            replica.process.send_signal(signal.SIGTERM)
        status = await replica.wait(timeout)
        if status is None:
            replica.process.kill()
            await replica.process.wait()
            raise AssertionError(
                f"replica {index} did not stop within {timeout:.0f} s of SIGTERM; its log:\n{replica.log()[-LOG_TAIL:]}"
            )
        return status

    async def restart(self, index: int, **env: str) -> None:
        """Start replica `index` again (terminated first if it still runs); `env` changes its settings from now on."""
        replica = self.replicas[index]
        if replica.alive:
            await self.terminate(index)
        replica.env.update(env)
        if "PORT" in env:
            replica.port = int(env["PORT"])
        await self._start(replica)

    async def stop_all(self) -> list[int | None]:
        """SIGTERM to every running replica at once; any still running after the grace (and more) is killed."""
        running = [r for r in self.replicas if r.alive]
        for replica in running:
            assert replica.process is not None
            replica.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(r.wait(GRACE_SECONDS + 15) for r in running))
        for replica in running:
            if replica.alive:
                assert replica.process is not None
                replica.process.kill()
                await replica.process.wait()
        return [r.returncode for r in self.replicas]

    # Slack's deliveries --------------------------------------------------------------------------------

    def _connection(self, replica: Replica) -> int:
        assert replica.alive, f"replica {replica.index} is not running"
        assert replica.connection is not None and replica.connection in self.slack.socket_connections, (
            f"replica {replica.index}'s Socket Mode connection ({replica.connection}) is not open"
        )
        return replica.connection

    async def deliver(self, event: dict[str, Any], *, replica: int = 0, retry: int = 0) -> None:
        """Deliver an Events API event to one replica (retry: Slack's retry number); it must be acknowledged."""
        target = self.replicas[replica]
        if self.mode == "socket":
            ack = await self.slack.deliver_socket(event, retry_attempt=retry, connection=self._connection(target))
            assert "envelope_id" in ack, ack
        else:
            status, body = await self.slack.deliver_http(target.events_url, event, retry_num=retry or None)
            assert status == 200, (status, body)

    async def interact(self, payload: dict[str, Any], *, replica: int = 0) -> None:
        """Deliver a block action or a shortcut to one replica; it must be acknowledged."""
        target = self.replicas[replica]
        if self.mode == "socket":
            self.slack.interactions.append(payload)
            ack = await self.slack.send_envelope("interactive", payload, connection=self._connection(target))
            assert "envelope_id" in ack, ack
        else:
            status, body = await self.slack.deliver_interactive_http(target.events_url, payload)
            assert status == 200, (status, body)

    # logs -------------------------------------------------------------------------------------------------

    def logs(self) -> str:
        return "\n".join(f"===== {r.log_path.name} =====\n{r.log()[-LOG_TAIL:]}" for r in self.replicas)

    def print_logs(self) -> None:
        print(self.logs())
