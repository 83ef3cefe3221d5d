"""Streaming at company scale: the real bot (its own process) against loopback fakes that enforce Slack's tiers.

    python -m bench.streaming                          # 1, 8, 24, 64 questions; update and auto; HTTP; warm
    python -m bench.streaming --sizes 24,64 --slack http,socket --cold --runs 3
    python -m bench.streaming --sizes 24 --modes auto --chars 900
    python -m bench.streaming --soak 1000 --modes update          # memory over 1000 answers in a row
    python -m bench.streaming --instructions                      # instructions per answer, under callgrind
    python -m bench.streaming --replicas 3 --database postgresql://USER@HOST:5432/DB --sizes 24  # 3 bots, 1 DB

Each question is a mention in its own thread (spread over 8 channels), all delivered at once: signed Events
API posts (`--slack http`) or concurrent envelopes on the Socket Mode websocket (`--slack socket`). The fake
model streams every answer at about 60 characters a second. Warm (the default), one question is answered
first and not measured; `--cold` delivers the burst the moment the bot listens. Prints a Markdown table:
start-up to listening, first sign of life after the event, lag between the model's last chunk and Slack
showing the complete answer, the slowest acknowledgement, Slack calls per answer, 429s, the bot's CPU time
and wake-ups per answer, its peak memory and its memory after the run; with `--runs K`, the median of K runs.
Figures, not assertions: see BENCHMARKS.md.

`--replicas N` runs N bot processes for the one workspace, all spawned together (cold: the burst leaves once
all listen; warm: each answers one warm-up question) and the burst's questions go round robin over them: HTTP,
each to its replica's own port; Socket Mode, each replica has its own websocket to the fake. Figures are of
the whole set: CPU is all replicas' together, per answer; peak MB and RSS after are the largest replica's
(peak sum MB adds them up); start-up is the slowest replica's; 429s and calls are the fake's. `--database
postgresql://…` (which several replicas need) runs every replica on that PostgreSQL server, in an empty
database of each run's own (`bench_<random>`, dropped after the run). DB trips/answer: the transactions the
server counted in that database (pg_stat_database: xact_commit + xact_rollback) from just before the burst to
the replicas' exit, per answer. A statement in autocommit is one transaction and one round trip, but a
transaction of several statements counts once, so this is a lower bound of the round trips; divide by
calls/answer for round trips per Slack call. PostgreSQL publishes a busy connection's counters up to 10 s
late, so warm runs wait 10.5 s (not 2.5) after the warm-up on PostgreSQL, and cold runs may count the last
start-up transactions (about 2 per replica). With SQLite (the default: a new file per run) the column shows "–".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import callgrind
from bench.common import (
    ACK_DEADLINE,
    CHANNELS,
    CHUNK_CHARS,
    PER_CHANNEL,
    SLACK_MODES,
    TIERS,
    USER,
    BenchError,
    BotProcess,
    Replicas,
    answer_text,
    bot_sources,
    cpu_seconds,
    median,
    mention,
    open_streams,
    question,
    script_for,
    shown_texts,
    socket_replicas_supported,
    start_fakes,
    status_mb,
    stop_fakes,
    stream_close_s,
    wait_for,
    wakeups,
)
from bench.database import QUIET_S, RunDatabase, check_server, is_postgres, where
from tests.fakes import mistral as fm
from tests.fakes import slack as fs

PACE = 60.0  # characters a second: 6 every 0.1 s
START_LIMIT = 60.0  # seconds from spawn to listening
DONE_LIMIT = 300.0  # seconds from the burst to every answer complete
# Under callgrind Python runs about 50 times slower (about 5 times before instrumentation is switched on).
VALGRIND_START_LIMIT = 600.0
VALGRIND_DONE_LIMIT = 1800.0
VALGRIND_PACE = 12.0  # the bot has to keep up with the model while it runs 50 times slower
WARM_PAUSE = 2.5  # seconds between the warm-up and the burst, for the warm-up's last calls to land


@dataclass(frozen=True)
class Config:
    slack: str  # http or socket
    cold: bool
    size: int
    mode: str  # SLACK_STREAMING: update or auto (or native)
    chars: int
    pace: float
    instructions: bool = False
    replicas: int = 1
    database: str | None = None  # a PostgreSQL server's URL; None: SQLite

    @property
    def label(self) -> str:
        replicas = f" x{self.replicas}" if self.replicas > 1 else ""
        return f"{self.slack} {'cold' if self.cold else 'warm'} {self.size} {self.mode}{replicas}"


@dataclass
class Run:
    startup_s: float
    life_median: float
    life_max: float
    lag_median: float
    lag_max: float
    ack_max: float
    close_max: float  # native streams: the longest from showing the whole text to chat.stopStream
    still_open: int  # native streams not stopped when the run ended
    late_acks: int  # acknowledged after Slack's 3 s (Slack would have retried them)
    lost: int  # no acknowledgement at all (or an error status)
    calls_per_answer: float
    rate_limited: int
    cpu_ms_per_answer: float
    peak_mb: float
    rss_after_mb: float
    complete: int
    instructions: int | None = None
    replicas: int = 1
    calls: int = 0  # Web API calls during the run
    peak_sum_mb: float = float("nan")  # the replicas' peaks added up (peak_mb and rss_after_mb: the largest's)
    cpu_ms_split: list[float] = field(default_factory=list)  # each replica's CPU per answer (of all answers)
    db_transactions: int | None = None  # PostgreSQL: transactions counted in the run's database; None: SQLite
    wakeups_per_answer: float = float("nan")  # voluntary context switches of every replica's threads, per answer

    def db_per_answer(self, size: int) -> float:
        return float("nan") if self.db_transactions is None else self.db_transactions / size

    def _database(self, size: int) -> str:
        if self.db_transactions is None:
            return ""
        per_call = self.db_transactions / self.calls if self.calls else float("nan")
        return f"{self.db_per_answer(size):.1f} DB trips/answer ({per_call:.2f} per Slack call), "

    def _streams(self) -> str:
        if self.close_max != self.close_max and not self.still_open:
            return ""  # no native stream
        left = f" ({self.still_open} left open)" if self.still_open else ""
        return f"stream close max {self.close_max:.2f} s{left}, "

    def describe(self, size: int) -> str:
        text = (
            f"start-up {self.startup_s:.2f} s, life {self.life_median:.3f}/{self.life_max:.3f} s, "
            f"lag {self.lag_median:.2f}/{self.lag_max:.2f} s, ack max {self.ack_max:.3f} s, "
            f"{self._streams()}"
            f"{self.calls_per_answer:.1f} calls/answer, {self._database(size)}{self.rate_limited} 429s, "
            f"CPU {self.cpu_ms_per_answer:.1f} ms/answer{self._split()}, "
            f"{self.wakeups_per_answer:.0f} wake-ups/answer, peak {self.peak_mb:.0f} MB{self._sum()}, "
            f"RSS after {self.rss_after_mb:.0f} MB, {self.complete}/{size} complete"
        )
        if self.late_acks or self.lost:
            text += f", {self.late_acks} acks later than {ACK_DEADLINE:.0f} s, {self.lost} events lost"
        if self.instructions is not None:
            text += f", {self.instructions / size / 1e6:.2f} M instructions/answer"
        return text

    def _split(self) -> str:
        if self.replicas < 2:
            return ""
        return " (" + " + ".join(f"{ms:.1f}" for ms in self.cpu_ms_split) + " by replica)"

    def _sum(self) -> str:
        return f" (sum {self.peak_sum_mb:.0f} MB)" if self.replicas > 1 else ""


async def burst(cfg: Config) -> Run:
    """`cfg.replicas` bot processes, one burst of `cfg.size` concurrent questions; the figures of that burst."""
    slack, model = await start_fakes()
    start_limit = VALGRIND_START_LIMIT if cfg.instructions else START_LIMIT
    done_limit = VALGRIND_DONE_LIMIT if cfg.instructions else DONE_LIMIT
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            async with AsyncExitStack() as stack:
                db = await stack.enter_async_context(RunDatabase(cfg.database)) if cfg.database else None
                bots = Replicas([_bot(cfg, slack, model, tmp, i, db) for i in range(cfg.replicas)])
                try:
                    run, db_before = await _measure(cfg, bots, db, start_limit, done_limit, tmp)
                finally:
                    await bots.stop(grace=120.0 if cfg.instructions else 60.0)
                if db is not None:
                    # Read once every replica has exited: a connection publishes its last counters as it closes.
                    run.db_transactions = await db.transactions_after_exit() - db_before
                return run
    finally:
        await stop_fakes(slack, model)


def _bot(
    cfg: Config, slack: fs.FakeSlack, model: fm.FakeMistral, tmp: str, i: int, db: RunDatabase | None
) -> BotProcess:
    workdir = tmp if cfg.replicas == 1 else f"{tmp}/replica{i + 1}"
    Path(workdir).mkdir(exist_ok=True)
    return BotProcess(
        slack,
        model,
        cfg.slack,
        cfg.mode,
        workdir,
        wrapper=callgrind.wrapper(tmp) if cfg.instructions else (),
        extra_env={"DATABASE_URL": db.url} if db is not None else {},
    )


async def _measure(
    cfg: Config, bots: Replicas, db: RunDatabase | None, start_limit: float, done_limit: float, tmp: str
) -> tuple[Run, int]:
    """The burst's figures, and the database's transaction count just before it (0 with SQLite)."""
    slack, model = bots.bots[0].slack, bots.bots[0].model
    expected = [answer_text(cfg.chars, i) for i in range(cfg.size)]
    events: list[dict] = []
    if cfg.cold:
        # Everything ready before the spawn, so the burst leaves the moment every replica listens.
        for text in expected:
            model.queue(script_for(text, cfg.pace))
        events = [mention(slack, f"C0BENCH{i % CHANNELS}", question(i)) for i in range(cfg.size)]
    await bots.spawn(start_limit)
    if not cfg.cold:
        await bots.warm_up(start_limit)
        # Let the warm-up's last calls land; on PostgreSQL, also its transactions reach the server's counters.
        await asyncio.sleep(max(WARM_PAUSE, QUIET_S) if db is not None else WARM_PAUSE)
        for text in expected:
            model.queue(script_for(text, cfg.pace))
        events = [mention(slack, f"C0BENCH{i % CHANNELS}", question(i)) for i in range(cfg.size)]
    if cfg.instructions:
        await callgrind.start_counting(bots.bots[0].pid)
    calls_before, limited_before = len(slack.calls), slack.rate_limited
    db_before = await db.transactions() if db is not None else 0
    cpu_before = [cpu_seconds(bot.pid) for bot in bots.bots]
    wakeups_before = [wakeups(bot.pid) for bot in bots.bots]

    deliveries = await bots.deliver_all(events)
    answers = set(expected)
    threads = {(e["channel"], e["ts"]) for e in events}

    def all_done() -> bool:
        # Complete as people see it, and no native stream still open: stopping one is work the answer owes.
        shown = shown_texts(slack, threads)
        return not bots.alive or (all(shown.get(t) in answers for t in threads) and not open_streams(slack, threads))

    await wait_for(all_done, done_limit, 0.05)
    if not bots.alive:
        raise BenchError(f"the bot exited during the burst: {bots.dead()}")
    await asyncio.sleep(5.0 if cfg.instructions else 1.0)  # let stream closing calls land before counting
    instructions = await callgrind.stop_counting(bots.bots[0].pid, tmp) if cfg.instructions else None
    cpu = [cpu_seconds(bot.pid) - before for bot, before in zip(bots.bots, cpu_before, strict=True)]
    woken = sum(wakeups(bot.pid) - before for bot, before in zip(bots.bots, wakeups_before, strict=True))
    peaks = [status_mb(bot.pid, "VmHWM") for bot in bots.bots]
    rss = max(status_mb(bot.pid, "VmRSS") for bot in bots.bots)
    calls = len(slack.calls) - calls_before
    limited = slack.rate_limited - limited_before

    shown = shown_texts(slack, threads)
    still_open = open_streams(slack, threads)
    closes = [stream_close_s(m) for m in slack.messages.values() if (m.channel, m.thread_ts or "") in threads]
    lives, lags, complete = [], [], 0
    for i, (event, delivery) in enumerate(zip(events, deliveries, strict=True)):
        replies = slack.bot_replies(event["channel"], event["ts"])
        removed = [m for m in slack.deleted if m.channel == event["channel"] and m.thread_ts == event["ts"]]
        # The first sign of life: the loading state under the thread, or the first message (a placeholder).
        signs = [m.changed_at[0] for m in replies + removed]
        signs += [s.at for s in slack.status_history(event["channel"], event["ts"]) if s.text]
        if not signs:
            continue
        lives.append(min(signs) - delivery.sent_at)
        if shown.get((event["channel"], event["ts"])) not in answers:
            continue
        complete += 1
        done_at = max(m.changed_at[m.history.index(m.text)] for m in replies)
        finished = model.last_chunk_at.get(f"[{USER}] {question(i)}")
        if finished is None:
            continue
        lags.append(done_at - finished)
        if os.environ.get("BENCH_VERBOSE") and done_at - finished > 5:
            _print_straggler(slack, event, replies + removed, finished)
    if os.environ.get("BENCH_VERBOSE"):
        print("  lags:", sorted(round(x, 2) for x in lags), file=sys.stderr)
        methods = Counter(call.method for call in slack.calls[calls_before:])
        by_method = {m: round(n / cfg.size, 2) for m, n in methods.most_common()}
        print("  calls/answer by method:", by_method, file=sys.stderr)
    acks = [d.ack_s for d in deliveries if d.ack_s == d.ack_s]
    run = Run(
        startup_s=bots.startup_s,
        life_median=median(lives),
        life_max=max(lives, default=float("nan")),
        lag_median=median(lags),
        lag_max=max(lags, default=float("nan")),
        ack_max=max(acks, default=float("nan")),
        close_max=max((c for c in closes if c == c), default=float("nan")),
        still_open=still_open,
        late_acks=sum(a > ACK_DEADLINE for a in acks),
        lost=len(deliveries) - len(acks),
        calls_per_answer=calls / cfg.size,
        rate_limited=limited,
        cpu_ms_per_answer=sum(cpu) * 1000 / cfg.size,
        peak_mb=max(peaks),
        rss_after_mb=rss,
        complete=complete,
        instructions=instructions,
        replicas=cfg.replicas,
        calls=calls,
        peak_sum_mb=sum(peaks),
        cpu_ms_split=[c * 1000 / cfg.size for c in cpu],
        wakeups_per_answer=woken / cfg.size,
    )
    return run, db_before


def _print_straggler(slack: fs.FakeSlack, event: dict, messages: list[fs.Message], finished: float) -> None:
    ts = {m.ts for m in messages}
    for call in slack.calls:
        if call.args.get("ts") in ts or call.args.get("thread_ts") == event["ts"]:
            print(
                f"  straggler {event['ts']}: {call.at - finished:+.2f}s {call.method} {call.status} {call.error or ''}",
                file=sys.stderr,
            )


# the table --------------------------------------------------------------------------------------------------

HEADER = (
    "slack",
    "start",
    "questions",
    "mode",
    "replicas",
    "runs",
    "start-up s",
    "life med s",
    "life max s",
    "lag med s",
    "lag max s",
    "ack max s",
    "stream close max s",
    "calls/answer",
    "DB trips/answer",
    "429s",
    "CPU ms/answer",
    "CPU min–max",
    "wake-ups/answer",
    "peak MB",
    "peak sum MB",
    "RSS after MB",
    "complete",
)


def header(instructions: bool) -> str:
    columns = HEADER + (("M instr/answer",) if instructions else ())
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def row(cfg: Config, runs: list[Run], failed: int) -> str:
    """Medians of the runs; 429s, late acks, lost events and complete answers are totals over the runs."""
    n = len(runs)

    def med(name: str) -> float:
        return median([getattr(r, name) for r in runs])

    cpu = [r.cpu_ms_per_answer for r in runs]
    complete = f"{sum(r.complete for r in runs)}/{cfg.size * (n + failed)}"
    if failed:
        complete += f" ({failed} run{'s' * (failed > 1)} failed)"
    ack = f"{med('ack_max'):.3f}"
    late, lost = sum(r.late_acks for r in runs), sum(r.lost for r in runs)
    if late or lost:
        ack += f" ({late} late, {lost} lost)"
    close = f"{med('close_max'):.2f}" if any(r.close_max == r.close_max for r in runs) else "–"
    still_open = sum(r.still_open for r in runs)
    if still_open:
        close += f" ({still_open} left open)"
    counted = [r.db_per_answer(cfg.size) for r in runs if r.db_transactions is not None]
    db = f"{median(counted):.1f}" if counted else "–"  # SQLite (or no run measured)
    cells = [
        cfg.slack,
        "cold" if cfg.cold else "warm",
        str(cfg.size),
        cfg.mode,
        str(cfg.replicas),
        str(n),
        f"{med('startup_s'):.2f}",
        f"{med('life_median'):.3f}",
        f"{med('life_max'):.3f}",
        f"{med('lag_median'):.2f}",
        f"{med('lag_max'):.2f}",
        ack,
        close,
        f"{med('calls_per_answer'):.1f}",
        db,
        str(sum(r.rate_limited for r in runs)),
        f"{med('cpu_ms_per_answer'):.1f}",
        f"{min(cpu, default=float('nan')):.1f}–{max(cpu, default=float('nan')):.1f}",
        f"{med('wakeups_per_answer'):.0f}",
        f"{med('peak_mb'):.0f}",
        f"{med('peak_sum_mb'):.0f}",
        f"{med('rss_after_mb'):.0f}",
        complete,
    ]
    if cfg.instructions:
        per_answer = [r.instructions / cfg.size / 1e6 for r in runs if r.instructions is not None]
        cells.append(f"{statistics.median(per_answer):.2f}" if per_answer else "n/a")
    return "| " + " | ".join(cells) + " |"


async def measure(cfg: Config, k: int) -> tuple[list[Run], int]:
    runs, failed = [], 0
    for i in range(k):
        began = time.monotonic()
        try:
            run = await burst(cfg)
        except (BenchError, RuntimeError, OSError) as exc:
            failed += 1
            print(f"  {cfg.label} run {i + 1}/{k} failed: {exc}", file=sys.stderr, flush=True)
            continue
        runs.append(run)
        took = time.monotonic() - began
        print(f"  {cfg.label} run {i + 1}/{k} ({took:.0f} s): {run.describe(cfg.size)}", file=sys.stderr, flush=True)
    return runs, failed


# the command line -------------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(
        prog="python -m bench.streaming", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--sizes", help="concurrent questions per burst (default 1,8,24,64; 8 with --instructions)")
    cli.add_argument("--modes", help="SLACK_STREAMING modes (default update,auto; update with --instructions)")
    cli.add_argument("--slack", default="http", help="how Slack delivers events: http, socket or both (http,socket)")
    cli.add_argument("--cold", action="store_true", help="no warm-up: deliver the burst as soon as the bot listens")
    cli.add_argument("--runs", type=int, default=1, help="repeat each configuration K times; print medians")
    cli.add_argument("--chars", type=int, help="answer length (default 600 ≈ 10 s of streaming; 120 with --soak)")
    cli.add_argument("--pace", type=float, help=f"model characters a second (default {PACE:.0f}; see --soak)")
    cli.add_argument("--soak", type=int, metavar="N", help="answer N questions in waves and watch the bot's memory")
    cli.add_argument("--wave", type=int, default=24, help="concurrent questions per wave in --soak (default 24)")
    cli.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="bot processes serving the workspace together; the burst goes round robin over them (default 1; "
        "above 1 needs --database postgresql://…)",
    )
    cli.add_argument(
        "--database",
        default="sqlite",
        metavar="URL",
        help="sqlite (the default: a new file per run) or a PostgreSQL server's postgresql://user@host:port/db: "
        "each run then gets an empty database of its own there (bench_<random>, dropped after; the user needs "
        "CREATEDB), and DB trips/answer shows the transactions the server counted during the burst, per answer: "
        "a lower bound of the round trips, since a multi-statement transaction counts once",
    )
    cli.add_argument(
        "--instructions",
        action="store_true",
        help="run the bot under callgrind and count its instructions per answer during the burst (slow)",
    )
    args = cli.parse_args(argv)
    args.slack_modes = [s.strip() for s in args.slack.split(",") if s.strip()]
    unknown = set(args.slack_modes) - set(SLACK_MODES)
    if unknown or not args.slack_modes:
        cli.error(f"--slack takes {', '.join(SLACK_MODES)} (comma-separated), not {args.slack!r}")
    if args.runs < 1:
        cli.error("--runs must be at least 1")
    if args.replicas < 1:
        cli.error("--replicas must be at least 1")
    if args.database.lower() == "sqlite":
        args.database_url = None
    elif is_postgres(args.database):
        args.database_url = args.database
    else:
        cli.error("--database takes sqlite or a PostgreSQL URL (postgresql://user@host:port/dbname)")
    if args.replicas > 1 and args.database_url is None:
        cli.error("--replicas above 1 needs --database postgresql://…: SQLite serves one process")
    if args.replicas > 1 and "socket" in args.slack_modes and not socket_replicas_supported():
        cli.error(
            "Socket Mode with --replicas above 1 needs a fake Slack that holds several websockets "
            "(tests/fakes/slack.py: socket_connected(count=…), send_envelope(connection=…)); use --slack http"
        )
    if args.replicas > 1 and args.instructions:
        cli.error("--instructions counts one process's instructions: it takes --replicas 1")
    if args.soak is not None and (args.replicas > 1 or args.database_url is not None):
        cli.error("--soak runs one bot on SQLite: --replicas and --database apply to bursts")
    if args.soak is not None and (args.instructions or args.cold):
        cli.error("--soak measures memory over many answers; --cold and --instructions apply to bursts")
    if args.soak is not None and (args.soak < 1 or args.wave < 1):
        cli.error("--soak and --wave must be at least 1")
    slow = args.instructions
    args.size_list = [int(s) for s in (args.sizes or ("8" if slow else "1,8,24,64")).split(",")]
    args.mode_list = [m.strip() for m in (args.modes or ("update" if slow else "update,auto")).split(",")]
    return args


def describe_setup(args: argparse.Namespace, chars: int, pace: float) -> str:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    sources = bot_sources()
    print(f"bot measured: {sources}")
    print(
        f"answers of {chars} characters at ~{pace:g} characters/s ({CHUNK_CHARS} a chunk); questions in {CHANNELS} "
        f"channels; Slack tiers enforced: {TIERS} per workspace, {PER_CHANNEL} per channel"
    )
    replicas, url = getattr(args, "replicas", 1), getattr(args, "database_url", None)
    if replicas > 1:
        print(
            f"{replicas} replicas (bot processes) per run, spawned together, one workspace: the questions go round "
            "robin over them (HTTP: each its own port; Socket Mode: each its own websocket)"
        )
    if url is None:
        print("database: SQLite, a new file per run")
    else:
        print(
            f"database: PostgreSQL at {where(url)}, an empty database per run (dropped after); DB trips/answer: "
            "transactions the server counted (pg_stat_database) from just before the burst to the replicas' exit, "
            "per answer, a lower bound of round trips"
        )
    return sources


def warn_if_changed(sources: str) -> str:
    """Say so (stderr) when bot/ changed since `sources` was taken: the last row may mix versions."""
    now = bot_sources()
    if _digest(now) != _digest(sources):
        print(f"  note: bot/ changed during the last row; now {now}", file=sys.stderr, flush=True)
    return now


def _digest(sources: str) -> str:
    return sources.rsplit(" ", 1)[-1]  # the hash of bot/'s sources: a commit elsewhere changes nothing measured


def say_if_changed(first: str, last: str) -> None:
    """After the table (stdout): whether every row measured the bot named at the top."""
    if _digest(first) != _digest(last):
        print(f"\nnote: bot/ changed while the benchmark ran (now {last}); see stderr for the rows affected")


async def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.soak is not None:
        from bench import soak

        await soak.main(args)
        return
    chars = args.chars or 600
    pace = args.pace or (VALGRIND_PACE if args.instructions else PACE)
    if args.instructions:
        problem = callgrind.available()
        if problem:
            sys.exit(f"--instructions needs valgrind: {problem}")
    if args.database_url is not None:
        problem = await check_server(args.database_url)
        if problem:
            sys.exit(f"--database: {problem}")
    sources = describe_setup(args, chars, pace)
    if args.instructions:
        print(
            "under callgrind (--instr-atstart=no; counted from just before the burst to 5 s after its last "
            "answer): start-up, life, lag, CPU and memory are valgrind's, not the bot's; compare instructions"
        )
    print(header(args.instructions), flush=True)
    first = sources
    for slack_mode in args.slack_modes:
        for mode in args.mode_list:
            for size in args.size_list:
                cfg = Config(
                    slack_mode, args.cold, size, mode, chars, pace, args.instructions, args.replicas, args.database_url
                )
                runs, failed = await measure(cfg, args.runs)
                print(row(cfg, runs, failed), flush=True)
                sources = warn_if_changed(sources)
    say_if_changed(first, sources)


if __name__ == "__main__":
    asyncio.run(main())
