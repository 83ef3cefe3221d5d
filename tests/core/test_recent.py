from __future__ import annotations

from bot.core.recent import RecentKeys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_remembered_for_the_horizon_then_forgotten() -> None:
    clock = Clock()
    recent: RecentKeys[str] = RecentKeys(100, horizon=60, clock=clock)
    recent.add("a")
    clock.now += 30
    recent.add("b")
    assert "a" in recent and "b" in recent and "c" not in recent
    clock.now += 31  # "a" is 61 s old, "b" 31 s
    assert "a" not in recent and "b" in recent
    recent.add("c")  # adding forgets what expired: the memory holds only the last minute
    assert len(recent) == 2


def test_the_oldest_keys_go_first_past_the_cap() -> None:
    clock = Clock()
    recent: RecentKeys[int] = RecentKeys(3, horizon=60, clock=clock)
    for key in range(5):
        recent.add(key)
    assert [k for k in range(5) if k in recent] == [2, 3, 4] and len(recent) == 3


def test_a_key_added_again_is_remembered_from_then() -> None:
    clock = Clock()
    recent: RecentKeys[str] = RecentKeys(2, horizon=60, clock=clock)
    recent.add("a")
    recent.add("b")
    clock.now += 50
    recent.add("a")  # now the newest: "b" is forgotten first, and "a" lasts another minute
    recent.add("c")
    assert "a" in recent and "b" not in recent and "c" in recent
    clock.now += 30
    assert "a" in recent


def test_without_a_horizon_only_the_cap_forgets() -> None:
    clock = Clock()
    recent: RecentKeys[str] = RecentKeys(2, clock=clock)
    recent.add("a")
    clock.now += 10**9
    assert "a" in recent
    recent.add("b")
    recent.add("c")
    assert "a" not in recent and "b" in recent and "c" in recent
