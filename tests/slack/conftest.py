"""The Slack-out tests' shared pieces: a real slack_sdk client on the fake Slack, and what a thread shows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.api import SlackApi
from tests.fakes import slack as fs


@pytest.fixture
async def api(slack: fs.FakeSlack) -> AsyncIterator[SlackApi]:
    async with aiohttp.ClientSession() as session:
        yield SlackApi(AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url, session=session))


def assert_counts_back_to_zero(api: SlackApi, team: str = fs.TEAM) -> None:
    """Every ending gives back what the answer took from the workspace's pacer."""
    pacer = api.pacer(team)
    assert (pacer.answers_in_flight, pacer.native_in_flight, pacer.native_starting) == (0, 0, 0)
    assert pacer.waiting() == 0
