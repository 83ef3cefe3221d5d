"""What each part of an answer costs in CPU, measured alone: where the bot's time per answer goes.

    python -m bench.parts                 # every part, 300 repetitions each (24 concurrent model streams)

The whole-bot benchmark (`bench.streaming`) says how much CPU an answer takes; this one says which of its
pieces take it, so a change can be aimed and checked: a Web API call through the bot's `SlackApi`, through
slack_sdk alone and through aiohttp alone (what each layer adds); one model stream of ~100 SSE events
read as the bot reads it; one event through Bolt's dispatch; the store's operations of a turn; and the
process waking up from a short idle with nothing to do (on the VMs measured here, a wake-up alone costs tens
of microseconds, which is why the bot's timers share ticks and its small writes avoid a thread). The fakes
run in a child process, so the figures are this process's CPU only (`time.process_time`, on uvloop as the
bot runs). An answer at 24 concurrent questions makes about 5 Slack calls, one model stream, two inbound
events (a mention and its twin), one claim, one history read and 4–5 answer saves (three in full: its first,
the one that learns its first message and its last; the others save the text alone).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import KnownBot
from bot.core.pacing import DEFAULT_LIMITS, CallBudget, Limit
from bot.core.personas import Persona
from bot.mistral import MistralClient, Timeouts
from bot.runtime import loop_factory
from bot.slack.api import SlackApi
from bot.storage import NewMessage, SQLiteStore, Status, ThreadKey, Turn
from tests.fakes import mistral as fm
from tests.fakes import slack as fs

ROOT = Path(__file__).resolve().parent.parent
FAKES = """
import asyncio
from tests.fakes import mistral as fm, slack as fs

async def main():
    slack = fs.FakeSlack()
    await slack.start()
    model = fm.FakeMistral()
    model.default_delay, model.chunk_size = 0.1, 6  # ~60 characters a second, as bench.streaming
    await model.start()
    print(slack.api_url, model.url, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def per_call(label: str, times: int, work: Callable[[int], Awaitable[object]]) -> None:
    for i in range(min(times, 20)):  # warm connections and caches first
        await work(i)
    start = time.process_time()
    for i in range(times):
        await work(i)
    print(f"| {label} | {(time.process_time() - start) / times * 1000:.3f} |")


async def main(times: int) -> None:
    fakes = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FAKES, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert fakes.stdout is not None
        api_url, model_url = (await fakes.stdout.readline()).decode().split()
        print("| part | CPU ms each |\n|---|---|")
        async with aiohttp.ClientSession() as session:
            await slack_calls(session, api_url, times)
            await model_stream(model_url)
            await bolt_dispatch(session, api_url, times)
        await store_operations(times)
        await per_call("waking up after 20 ms idle (an asyncio.sleep), nothing else", 100, idle_wake_up)
    finally:
        fakes.terminate()
        await fakes.wait()


async def slack_calls(session: aiohttp.ClientSession, api_url: str, times: int) -> None:
    client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=api_url, session=session)
    api = SlackApi(client)
    # Far more calls than Slack's tiers allow a minute: the pacer gets room (it still does all its work).
    api.pacer(fs.TEAM).budget = CallBudget({**DEFAULT_LIMITS, "chat.update": Limit(1_000_000, 60.0)})
    ts = str((await api.post(fs.TEAM, "C1", "hello", thread_ts="1.1"))["ts"])
    args = {"channel": "C1", "ts": ts}

    async def through_bot(i: int) -> object:
        return await api.call(fs.TEAM, "chat.update", urgent=True, text=f"{'x' * 300}{i}", **args)

    async def through_sdk(i: int) -> object:
        return await client.api_call("chat.update", json={**args, "text": f"{'y' * 300}{i}"})

    async def through_aiohttp(i: int) -> object:
        headers = {"Authorization": f"Bearer {fs.BOT_TOKEN}"}
        payload = {**args, "text": f"{'z' * 300}{i}"}
        async with session.post(f"{api_url}chat.update", json=payload, headers=headers) as response:
            return await response.json()

    await per_call("Slack call (bot's SlackApi: pacer, retries, slack_sdk, aiohttp)", times, through_bot)
    await per_call("Slack call (slack_sdk alone)", times, through_sdk)
    await per_call("Slack call (aiohttp alone)", times, through_aiohttp)


async def model_stream(model_url: str) -> None:
    model = MistralClient(
        base_url=model_url, api_key=fm.API_KEY, timeouts=Timeouts(connect=5, idle=30, total=600, retry_budget=10)
    )
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "x" * 590}], "stream": True}

    async def one() -> int:
        return sum([1 async for _ in model.stream(body)])

    try:
        await one()
        start = time.process_time()
        await asyncio.gather(*(one() for _ in range(24)))
        print(f"| model stream (~100 events over 10 s, 24 at once) | {(time.process_time() - start) / 24 * 1000:.3f} |")
    finally:
        await model.aclose()


async def bolt_dispatch(session: aiohttp.ClientSession, api_url: str, times: int) -> None:
    identity = AuthorizeResult(
        enterprise_id=None, team_id=fs.TEAM, bot_user_id=fs.BOT_USER, bot_id=fs.BOT_ID, bot_token=fs.BOT_TOKEN
    )
    app = AsyncApp(
        client=AsyncWebClient(base_url=api_url, session=session),
        authorize=KnownBot(identity),
        process_before_response=True,
        signing_secret="unused",
        request_verification_enabled=False,
        raise_error_for_unhandled_request=True,
    )

    async def on_event(event: dict) -> None:
        return None

    app.event("message")(on_event)
    event = fs.FakeSlack().user_message("C1", "U1", "hello there")
    raw = json.dumps(fs.FakeSlack.envelope(event))

    async def dispatch(i: int) -> object:
        return await app.async_dispatch(AsyncBoltRequest(body=raw, headers={"content-type": "application/json"}))

    await per_call("inbound event through Bolt's dispatch", times, dispatch)


async def idle_wake_up(i: int) -> None:
    await asyncio.sleep(0.02)


async def store_operations(times: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        store = await SQLiteStore.open(f"{workdir}/bench.db")
        persona = Persona(system_prompt="be brief")
        turns: list[Turn] = []
        threads = itertools.count(1_700_000_000)

        async def claim(i: int) -> object:
            ts = f"{next(threads)}.000100"  # a new thread each time: every claim does the whole work
            turn = await store.claim_turn(
                ThreadKey(fs.TEAM, "C1", ts), persona, NewMessage("user", "a question " * 10, ts, "U1")
            )
            assert turn is not None
            turns.append(turn)
            return turn

        async def save(i: int) -> object:
            turn = turns[i % len(turns)]
            return await store.save_answer(turn.answer_id, text="x" * 600, status=Status.STREAMING, slack_parts=["1.2"])

        async def progress(i: int) -> object:
            turn = turns[i % len(turns)]
            return await store.save_progress(turn.answer_id, text="x" * 600, slack_parts=["1.2"])

        async def history(i: int) -> object:
            turn = turns[i % len(turns)]
            return await store.history(turn.conversation.id, turn.user_ts)

        try:
            await per_call("store: claim a turn (a transaction)", times, claim)
            await per_call("store: save an answer (its status or first message changed)", times, save)
            await per_call("store: save an answer's progress (its text grew)", times, progress)
            await per_call("store: read a thread's history", times, history)
            await per_call("store: a channel's persona", times, lambda i: store.get_channel_persona(fs.TEAM, "C1"))
        finally:
            await store.close()


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--times", type=int, default=300, help="repetitions of each part (default 300)")
    options = cli.parse_args()
    factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(options.times))
