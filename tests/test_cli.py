"""`python -m bot doctor | usage | forget` as an admin runs them: real processes, their output and exit status."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.config import load_settings
from bot.storage import open_store
from tests.conftest import Harness, until
from tests.fakes.slack import BOT_USER
from tests.test_startup import clean_environment

CHANNEL = "C0GENERAL"


async def run(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """The command in its own process while the fakes keep serving on this loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=clean_environment(**env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_doctor_usage_and_forget_from_the_command_line(http_harness: Harness) -> None:
    h = http_harness
    env = h.base_env()
    # A deployment nobody started yet passes: the database does not exist until the bot's first start.
    code, out, _ = await run("doctor", env=env, cwd=h.tmp_path)
    assert code == 0, out
    assert all(line.startswith("✓") for line in out.splitlines()) and "Database" in out

    await h.start()
    for user, text in (("U0ADA", "Name a cheese"), ("U0BOB", "And a wine")):
        event = h.slack.user_message(CHANNEL, user, f"<@{BOT_USER}> {text}")
        await h.deliver(h.slack.as_mention(event))
    await h.settle()
    await until(lambda: len(h.mistral.usages) == 2, message="two answers")
    await h.stop()

    code, out, _ = await run("usage", "--by", "user", "--format", "csv", env=env, cwd=h.tmp_path)
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split(",")[0] == "user" and {r.split(",")[0] for r in rows[1:]} == {"U0ADA", "U0BOB"}

    code, out, _ = await run("forget", "--user", "U0ADA", env=env, cwd=h.tmp_path)
    assert code == 0 and "Deleted 2 stored messages" in out  # the question and its answer
    store = await open_store(load_settings(env))
    try:
        users = {r.key for r in await store.usage_by("user", since=0)}
        assert users == {"U0BOB", None}  # Ada's figures stay, no longer naming her
    finally:
        await store.close()

    # A bad token is a ✗ line naming what to do, and exit status 1; a bad argument is status 2.
    code, out, _ = await run("doctor", env={**env, "SLACK_BOT_TOKEN": "xoxb-wrong"}, cwd=h.tmp_path)
    assert code == 1 and "✗ Slack bot token" in out and "xoxb-wrong" not in out
    code, _, err = await run("usage", "--since", "soon", env=env, cwd=h.tmp_path)
    assert code == 2 and err.count("\n") == 1
