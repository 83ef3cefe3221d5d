"""Streaming at company scale: the real bot (its own process) against loopback fakes that enforce Slack's tiers.

    python -m bench.streaming                 # 1, 8, 24 and 64 concurrent questions, update and auto modes
    python -m bench.streaming --sizes 24 --modes auto --chars 900

Each question is a mention in its own thread (spread over 8 channels); the fake model streams every answer
at about 60 characters a second. Prints, per run: first sign of life after the event, lag between the
model's last chunk and Slack showing the complete answer, Slack calls per answer, 429s, the bot's CPU time
per answer and its peak memory. Figures, not assertions: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import mistral as fm  # noqa: E402
from tests.fakes import slack as fs  # noqa: E402

# Slack's documented limits (REFERENCE.md), enforced by the fake with 429 + Retry-After.
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
CHUNK_DELAY = 0.1  # 6 characters every 0.1 s: 60 characters a second


@dataclass
class Result:
    size: int
    mode: str
    life_median: float
    life_max: float
    lag_median: float
    lag_max: float
    calls_per_answer: float
    rate_limited: int
    cpu_ms_per_answer: float
    peak_mb: float
    complete: int


def answer_text(chars: int, i: int) -> str:
    # Plain words: the same in Markdown and in Slack's mrkdwn, so completeness is a string comparison.
    words = []
    n = 0
    while n < chars:
        word = f"answer{i}word{len(words)}"
        words.append(word)
        n += len(word) + 1
    return " ".join(words)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_for(predicate: Callable[[], object], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


async def run(size: int, mode: str, chars: int) -> Result:
    slack, model = fs.FakeSlack(), fm.FakeMistral()
    await slack.start()
    await model.start()
    slack.limits = dict(TIERS)
    slack.channel_limits = dict(PER_CHANNEL)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": fs.BOT_TOKEN,
            "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "PORT": str(port),
            "MISTRAL_API_KEY": fm.API_KEY,
            "MISTRAL_BASE_URL": model.url,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "LOG_LEVEL": "WARNING",
            "SLACK_STREAMING": mode,
            "PERSONAS_FILE": f"{tmp}/none.toml",
        }
        env.pop("SLACK_APP_TOKEN", None)
        bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}/slack/events"
        try:
            await wait_for(lambda: _listening(port), 30)
            # Warm-up (not measured): Bolt's auth.test, the tokenizer loading in the background.
            model.queue(fm.Script(chunks=["warm"]))
            warm = slack.user_message("C0WARM", "U0ADA", f"<@{fs.BOT_USER}> warm up")
            await slack.deliver_http(url, slack.as_mention(warm))
            await wait_for(lambda: any(m.text == "warm" for m in slack.bot_replies("C0WARM", warm["ts"])), 30)
            await asyncio.sleep(2.5)
            calls_before, limited_before = len(slack.calls), slack.rate_limited
            cpu_before = cpu_seconds(bot.pid)

            expected = [answer_text(chars, i) for i in range(size)]
            for text in expected:
                chunks = [text[j : j + CHUNK_CHARS] for j in range(0, len(text), CHUNK_CHARS)]
                model.queue(fm.Script(chunks=chunks, delay=CHUNK_DELAY))
            events = [
                slack.user_message(f"C0BENCH{i % CHANNELS}", "U0ADA", f"<@{fs.BOT_USER}> question {i}")
                for i in range(size)
            ]
            sent_at: dict[str, float] = {}

            async def deliver(event: dict) -> None:
                sent_at[event["ts"]] = time.monotonic()
                await slack.deliver_http(url, slack.as_mention(event))

            await asyncio.gather(*(deliver(e) for e in events))
            # Scripts are handed out in request order, so match answers to threads by their text.
            answers = set(expected)

            def shown(event: dict) -> str:
                return " ".join(m.text for m in slack.bot_replies(event["channel"], event["ts"])).strip()

            await wait_for(lambda: all(shown(e) in answers for e in events), 300)
            await asyncio.sleep(1.0)  # let stream closing calls land before counting
            cpu = cpu_seconds(bot.pid) - cpu_before
            peak = peak_rss_mb(bot.pid)
            calls = len(slack.calls) - calls_before
            limited = slack.rate_limited - limited_before
        finally:
            bot.send_signal(signal.SIGTERM)
            await bot.wait()
        lives, lags, complete = [], [], 0
        for event in events:
            replies = slack.bot_replies(event["channel"], event["ts"])
            if not replies:
                continue
            removed = [m for m in slack.deleted if m.channel == event["channel"] and m.thread_ts == event["ts"]]
            lives.append(min(m.changed_at[0] for m in replies + removed) - sent_at[event["ts"]])
            final = shown(event)
            if final not in answers:
                continue
            complete += 1
            done_at = max(m.changed_at[m.history.index(m.text)] for m in replies)
            finished = model.last_chunk_at[f"[U0ADA] question {events.index(event)}"]
            lags.append(done_at - finished)
            if os.environ.get("BENCH_VERBOSE") and done_at - finished > 5:
                ts = {m.ts for m in replies + removed}
                for call in slack.calls:
                    if call.args.get("ts") in ts or call.args.get("thread_ts") == event["ts"]:
                        print(
                            f"  straggler {event['ts']}: {call.at - finished:+.2f}s {call.method} {call.status} "
                            f"{call.error or ''}",
                            file=sys.stderr,
                        )
    await slack.stop()
    await model.stop()
    if os.environ.get("BENCH_VERBOSE"):
        print("lags:", sorted(round(x, 2) for x in lags), file=sys.stderr)
    return Result(
        size,
        mode,
        statistics.median(lives) if lives else float("nan"),
        max(lives, default=float("nan")),
        statistics.median(lags) if lags else float("nan"),
        max(lags, default=float("nan")),
        calls / size,
        limited,
        cpu * 1000 / size,
        peak,
        complete,
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,8,24,64")
    parser.add_argument("--modes", default="update,auto")
    parser.add_argument("--chars", type=int, default=600, help="answer length (600 ≈ 10 s of streaming)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    print(
        f"answers of {args.chars} characters at ~60 characters/s; questions in {CHANNELS} channels; "
        f"Slack tiers enforced: {TIERS} per workspace, {PER_CHANNEL} per channel"
    )
    header = (
        "questions",
        "mode",
        "life med s",
        "life max s",
        "lag med s",
        "lag max s",
        "calls/answer",
        "429s",
        "CPU ms/answer",
        "peak MB",
        "complete",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for mode in args.modes.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            r = await run(size, mode, args.chars)
            print(
                f"| {r.size} | {r.mode} | {r.life_median:.3f} | {r.life_max:.3f} | {r.lag_median:.2f} | "
                f"{r.lag_max:.2f} | {r.calls_per_answer:.1f} | {r.rate_limited} | {r.cpu_ms_per_answer:.1f} | "
                f"{r.peak_mb:.0f} | {r.complete}/{r.size} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
