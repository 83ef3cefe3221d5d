"""Soak: many answers in a row through one bot process, watching its resident memory for growth.

    python -m bench.streaming --soak 1000 --modes update          # 1000 answers in waves of 24

Questions come in waves (`--wave`, 24 by default) of short answers (120 characters) streamed fast (600
characters a second), the next wave once every answer of the last is complete. The warm-up is one question,
then one wave that is not counted (the working set of a first burst is not growth); the bot's VmRSS is read
after each, and after every wave of the N answers measured. Slack's tiers stay enforced, and the bot paces
itself to them: every answer needs a final chat.update (or a repost and a chat.delete), both Tier 3 (50 a
minute), so the bot answers at most about 100 questions a minute whatever the model's pace, and 1000 answers
take ten minutes or more.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field

from bench.common import (
    CHANNELS,
    BenchError,
    BotProcess,
    answer_text,
    cpu_seconds,
    mention,
    open_streams,
    question,
    script_for,
    shown_texts,
    start_fakes,
    status_mb,
    stop_fakes,
    wait_for,
    warm_up,
)

CHARS = 120
PACE = 600.0  # characters a second: 6 every 10 ms
START_LIMIT = 60.0
WAVE_LIMIT = 180.0  # seconds for one wave's answers to be complete; past it the soak stops


@dataclass
class Sample:
    answers: int
    rss_mb: float
    cpu_s: float
    at: float


@dataclass
class Soak:
    slack: str
    mode: str
    target: int
    wave: int
    chars: int
    startup_s: float = float("nan")
    warm_rss_mb: float = float("nan")  # after the one warm-up question, before the warm-up wave
    samples: list[Sample] = field(default_factory=list)  # the first one after the warm-up wave
    peak_mb: float = float("nan")
    complete: int = 0
    calls: int = 0
    rate_limited: int = 0
    stopped: str = ""  # why the soak ended early, if it did

    @property
    def answered(self) -> int:
        return self.samples[-1].answers if self.samples else 0

    def at(self, answers: int) -> Sample:
        """The first sample taken once `answers` questions were answered (the last one if none)."""
        return next((s for s in self.samples if s.answers >= answers), self.samples[-1])

    def slope(self) -> float:
        """Least-squares growth of RSS over the second half of the answers, in MB per 100 answers."""
        half = [s for s in self.samples if s.answers >= self.answered / 2]
        if len(half) < 2:
            return float("nan")
        mean_x = sum(s.answers for s in half) / len(half)
        mean_y = sum(s.rss_mb for s in half) / len(half)
        sxx = sum((s.answers - mean_x) ** 2 for s in half)
        sxy = sum((s.answers - mean_x) * (s.rss_mb - mean_y) for s in half)
        return 100 * sxy / sxx if sxx else float("nan")

    def cpu_ms_per_answer(self, since: int = 0) -> float:
        first, last = self.at(since), self.samples[-1]
        n = last.answers - first.answers
        return 1000 * (last.cpu_s - first.cpu_s) / n if n else float("nan")

    @property
    def minutes(self) -> float:
        return (self.samples[-1].at - self.samples[0].at) / 60 if len(self.samples) > 1 else float("nan")


async def soak(slack_mode: str, mode: str, target: int, wave: int, chars: int, pace: float) -> Soak:
    result = Soak(slack_mode, mode, target, wave, chars)
    slack, model = await start_fakes()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
            bot = BotProcess(slack, model, slack_mode, mode, tmp)

            async def answer_wave(first: int, size: int) -> int:
                """Questions `first`… at once; how many answers are complete once the wave ends."""
                expected = [answer_text(chars, first + i) for i in range(size)]
                for text in expected:
                    model.queue(script_for(text, pace))
                channels = [f"C0SOAK{(first + i) % CHANNELS}" for i in range(size)]
                events = [mention(slack, c, question(first + i)) for i, c in enumerate(channels)]
                await bot.deliver_all(events)
                answers, threads = set(expected), {(e["channel"], e["ts"]) for e in events}

                def wave_done() -> bool:
                    shown = shown_texts(slack, threads)
                    return not bot.alive or (
                        all(shown.get(t) in answers for t in threads) and not open_streams(slack, threads)
                    )

                await wait_for(wave_done, WAVE_LIMIT, 0.1)
                shown = shown_texts(slack, threads)
                return sum(shown.get(t) in answers for t in threads)

            try:
                await bot.spawn(START_LIMIT)
                result.startup_s = bot.startup_s
                await warm_up(bot, START_LIMIT)
                # A first wave, not counted: memory is measured from a process that has met the load it is
                # measured under (the first burst's working set is not growth).
                result.warm_rss_mb = status_mb(bot.pid, "VmRSS")
                if await answer_wave(target, wave) < wave:
                    raise BenchError(f"the warm-up wave was not answered within {WAVE_LIMIT:.0f} s")
                await asyncio.sleep(2.5)  # let the warm-up's last calls land
                calls_before, limited_before = len(slack.calls), slack.rate_limited
                result.samples.append(Sample(0, status_mb(bot.pid, "VmRSS"), cpu_seconds(bot.pid), time.monotonic()))
                n = 0
                while n < target:
                    size = min(wave, target - n)
                    done = await answer_wave(n, size)
                    if not bot.alive:
                        result.stopped = f"the bot exited with status {bot.returncode}"
                        break
                    result.complete += done
                    n += size
                    sample = Sample(n, status_mb(bot.pid, "VmRSS"), cpu_seconds(bot.pid), time.monotonic())
                    result.samples.append(sample)
                    if n % (wave * 10) < wave or n >= target:
                        rate = n / max(sample.at - result.samples[0].at, 1e-9) * 60
                        print(
                            f"  soak {slack_mode} {mode}: {n}/{target} answers, RSS {sample.rss_mb:.1f} MB, "
                            f"{rate:.0f} answers/min",
                            file=sys.stderr,
                            flush=True,
                        )
                    if done < size:
                        result.stopped = f"{size - done} answers of the wave at {n} not complete in {WAVE_LIMIT:.0f} s"
                        break
                if bot.alive:
                    result.peak_mb = status_mb(bot.pid, "VmHWM")
                result.calls = len(slack.calls) - calls_before
                result.rate_limited = slack.rate_limited - limited_before
            finally:
                await bot.stop()
    finally:
        await stop_fakes(slack, model)
    return result


HEADER = (
    "slack",
    "mode",
    "answers",
    "wave",
    "chars",
    "start-up s",
    "RSS after 1 question MB",
    "RSS after warm-up wave MB",
    "RSS at N/2 MB",
    "RSS at N MB",
    "MB/100 answers (2nd half)",
    "peak MB",
    "CPU ms/answer",
    "calls/answer",
    "429s",
    "complete",
    "minutes",
)


def row(s: Soak) -> str:
    cells = [
        s.slack,
        s.mode,
        str(s.answered),
        str(s.wave),
        str(s.chars),
        f"{s.startup_s:.2f}",
        f"{s.warm_rss_mb:.1f}",
        f"{s.samples[0].rss_mb:.1f}",
        f"{s.at(s.answered // 2).rss_mb:.1f}",
        f"{s.samples[-1].rss_mb:.1f}",
        f"{s.slope():+.2f}",
        f"{s.peak_mb:.0f}",
        f"{s.cpu_ms_per_answer():.1f}",
        f"{s.calls / max(s.answered, 1):.1f}",
        str(s.rate_limited),
        f"{s.complete}/{s.answered}" + (f" (stopped: {s.stopped})" if s.stopped else ""),
        f"{s.minutes:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


async def main(args: argparse.Namespace) -> None:
    from bench.streaming import describe_setup, say_if_changed, warn_if_changed

    chars, pace = args.chars or CHARS, args.pace or PACE
    sources = describe_setup(args, chars, pace)
    print(
        f"soak: {args.soak} answers in waves of {args.wave}, after a warm-up of a question and a wave; "
        "RSS (VmRSS) read after each and after every wave"
    )
    print("| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER), flush=True)
    first = sources
    for slack_mode in args.slack_modes:
        for mode in args.mode_list:
            for k in range(args.runs):
                try:
                    result = await soak(slack_mode, mode, args.soak, args.wave, chars, pace)
                except (BenchError, OSError) as exc:
                    print(f"  soak {slack_mode} {mode} run {k + 1} failed: {exc}", file=sys.stderr, flush=True)
                    continue
                print(row(result), flush=True)
                trace = ", ".join(f"{s.answers}: {s.rss_mb:.1f}" for s in result.samples)
                print(f"  RSS MB by answers: {trace}", file=sys.stderr, flush=True)
                sources = warn_if_changed(sources)
    say_if_changed(first, sources)
