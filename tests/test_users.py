"""The user directory's cache: bounded in size (least recently used names go first) and in age (renames show);
unknown IDs remembered, overlapping look-ups shared."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.slack.api import RateLimited, SlackCallError
from bot.users import UserDirectory


class FakeSlackApi:
    """Answers `users.info` from a dict; counts the calls; fails for users in `failing`."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.calls: list[str] = []
        self.failing: dict[str, Exception] = {}

    async def call(self, team_id: str, method: str, *, retry_rate_limited: bool = True, **payload: Any) -> dict:
        assert method == "users.info" and retry_rate_limited is False
        user = payload["user"]
        self.calls.append(user)
        if user in self.failing:
            raise self.failing[user]
        return {"ok": True, "user": {"id": user, "profile": {"display_name": self.names[user]}}}


class SlowSlackApi(FakeSlackApi):
    """Answers after a moment, as Slack does: look-ups that overlap can be seen overlapping."""

    async def call(self, team_id: str, method: str, *, retry_rate_limited: bool = True, **payload: Any) -> dict:
        await asyncio.sleep(0.05)
        return await super().call(team_id, method, retry_rate_limited=retry_rate_limited, **payload)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def directory(api: FakeSlackApi, **kwargs: Any) -> UserDirectory:
    return UserDirectory(api, **kwargs)  # type: ignore[arg-type]


async def test_names_are_cached() -> None:
    api = FakeSlackApi({"U1": "Ada"})
    users = directory(api)
    assert await users.name("T1", "U1") == "Ada"
    assert await users.name("T1", "U1") == "Ada"
    assert api.calls == ["U1"]


async def test_the_least_recently_used_name_is_evicted_past_the_cap() -> None:
    api = FakeSlackApi({f"U{i}": f"person {i}" for i in range(4)})
    users = directory(api, max_entries=3)
    for uid in ("U0", "U1", "U2"):
        await users.name("T1", uid)
    await users.name("T1", "U0")  # U0 used again: U1 is now the least recently used
    await users.name("T1", "U3")  # over the cap: U1 goes
    assert len(users) == 3
    api.calls.clear()
    for uid in ("U0", "U2", "U3"):
        await users.name("T1", uid)
    assert api.calls == []  # still cached
    assert await users.name("T1", "U1") == "person 1"
    assert api.calls == ["U1"]  # evicted, so asked again
    assert len(users) == 3


async def test_names_expire_so_renames_show() -> None:
    api = FakeSlackApi({"U1": "Ada"})
    clock = Clock()
    users = directory(api, ttl=86_400.0, clock=clock)
    assert await users.name("T1", "U1") == "Ada"
    api.names["U1"] = "Ada Lovelace"
    clock.now = 86_399.0
    assert await users.name("T1", "U1") == "Ada"
    clock.now = 86_401.0
    assert await users.name("T1", "U1") == "Ada Lovelace"
    assert api.calls == ["U1", "U1"]


async def test_an_expired_name_is_kept_when_slack_cannot_say() -> None:
    api = FakeSlackApi({"U1": "Ada"})
    clock = Clock()
    users = directory(api, ttl=100.0, clock=clock)
    assert await users.name("T1", "U1") == "Ada"
    clock.now = 200.0
    api.failing["U1"] = RateLimited("users.info", 30.0)
    assert await users.name("T1", "U1") == "Ada"  # stale beats the bare ID
    del api.failing["U1"]
    api.names["U1"] = "Ada L."
    assert await users.name("T1", "U1") == "Ada L."  # and it is asked again next time


async def test_an_id_slack_does_not_know_stands_for_its_name_for_a_while() -> None:
    api = FakeSlackApi({"U1": "Ada"})
    api.failing["U1"] = SlackCallError("users.info", "user_not_found")
    clock = Clock()
    users = directory(api, unknown_ttl=3600.0, clock=clock)
    assert await users.name("T1", "U1") == "U1"
    assert await users.name("T1", "U1") == "U1"
    assert api.calls == ["U1"]  # remembered: every turn of that person would ask again otherwise
    del api.failing["U1"]
    clock.now = 3601.0
    assert await users.name("T1", "U1") == "Ada"
    assert api.calls == ["U1", "U1"]


async def test_a_failed_look_up_is_not_remembered() -> None:
    api = FakeSlackApi({"U1": "Ada"})
    api.failing["U1"] = SlackCallError("users.info", "internal_error", transient=True)
    users = directory(api)
    assert await users.name("T1", "U1") == "U1"
    assert len(users) == 0
    del api.failing["U1"]
    assert await users.name("T1", "U1") == "Ada"


async def test_answers_that_need_one_name_at_once_share_one_look_up() -> None:
    api = SlowSlackApi({"U1": "Ada", "U2": "Grace"})
    users = directory(api)
    names = await asyncio.gather(*(users.name("T1", "U1") for _ in range(24)), users.name("T1", "U2"))
    assert names == ["Ada"] * 24 + ["Grace"]
    assert sorted(api.calls) == ["U1", "U2"]


async def test_an_asker_cancelled_leaves_the_look_up_to_the_others() -> None:
    api = SlowSlackApi({"U1": "Ada"})
    users = directory(api)
    first = asyncio.create_task(users.name("T1", "U1"))
    second = asyncio.create_task(users.name("T1", "U1"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "Ada"
    assert first.cancelled() and api.calls == ["U1"]
    assert await users.name("T1", "U1") == "Ada" and api.calls == ["U1"]


async def test_the_same_user_id_in_two_workspaces_is_two_entries() -> None:
    api = FakeSlackApi({"U1": "Ada"})
    users = directory(api)
    await users.names("T1", {"U1"})
    await users.names("T2", {"U1"})
    assert api.calls == ["U1", "U1"] and len(users) == 2


async def test_a_lookup_stuck_behind_a_rate_limit_pause_falls_back_to_the_id_quickly() -> None:
    from bot import users

    class Paused:
        async def call(self, team_id: str, method: str, **kwargs: object) -> dict:
            await asyncio.sleep(3600)  # the pacer holds users.info for a long Retry-After
            return {}

    directory = UserDirectory(Paused())  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await directory.name("T0", "U0ADA") == "U0ADA"
    assert loop.time() - started < users.LOOKUP_TIMEOUT + 1
