"""How to spend one workspace's Slack rate budget: sliding-window accounting per method, learned from 429s.

Pure: every method takes `now`, so tests drive it with a hand-made clock. The async scheduler that hands out
call slots (`bot.slack_out.Pacer`) decides *who* calls next; this decides *when* a call may go.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    calls: int
    window: float  # seconds


# Slack's documented tiers (REFERENCE.md), per workspace unless the key carries a scope such as a channel.
DEFAULT_LIMITS: dict[str, Limit] = {
    "chat.update": Limit(50, 60.0),  # Tier 3
    "chat.delete": Limit(50, 60.0),  # Tier 3
    "chat.postMessage": Limit(10, 10.0),  # about one a second per channel, with short bursts
    "chat.postEphemeral": Limit(100, 60.0),  # Tier 4
    "conversations.replies": Limit(50, 60.0),  # Tier 3 (far less for unlisted apps; 429s teach us)
    "users.info": Limit(100, 60.0),  # Tier 4
    "assistant.threads.setStatus": Limit(50, 60.0),
    "chat.startStream": Limit(20, 60.0),  # Tier 2
    "chat.appendStream": Limit(100, 60.0),  # Tier 4
    "chat.stopStream": Limit(20, 60.0),  # Tier 2
}
FALLBACK_LIMIT = Limit(20, 60.0)  # Tier 2: the safe guess for a method not listed


def method_of(key: str) -> str:
    """Budget keys are a method, optionally scoped: `chat.postMessage#C123`."""
    return key.split("#", 1)[0]


class CallBudget:
    """Which calls may go now, for one workspace. Never plans to exceed a limit; shrinks a limit on 429."""

    def __init__(self, limits: dict[str, Limit] | None = None) -> None:
        self._limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self._calls: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self.rate_limited_count = 0

    def limit(self, key: str) -> Limit:
        return self._limits.get(key) or self._limits.get(method_of(key)) or FALLBACK_LIMIT

    def used(self, key: str, now: float) -> int:
        return len(self._window(key, now))

    def wait_time(self, key: str, now: float, *, reserve: int = 0) -> float:
        """Seconds until a call on `key` may go (0: now), keeping `reserve` calls of the window free."""
        blocked = self._blocked_until.get(key, 0.0) - now
        if blocked > 0:
            return blocked
        limit = self.limit(key)
        allowed = max(limit.calls - reserve, 1)
        calls = self._window(key, now)
        if len(calls) < allowed:
            return 0.0
        # The call `allowed` places from the newest must leave the window first.
        return calls[len(calls) - allowed] + limit.window - now

    def record(self, key: str, now: float) -> None:
        self._window(key, now).append(now)

    def rate_limited(self, key: str, now: float, retry_after: float) -> None:
        """Slack said 429: pause the key for `retry_after` and believe the limit is below what we used."""
        self.rate_limited_count += 1
        self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), now + max(retry_after, 0.0))
        limit = self.limit(key)
        # The refused call was recorded but not counted by Slack.
        used = len(self._window(key, now)) - 1
        if 0 < used < limit.calls:
            self._limits[key] = Limit(used, limit.window)

    def _window(self, key: str, now: float) -> deque[float]:
        calls = self._calls.setdefault(key, deque())
        horizon = now - self.limit(key).window
        while calls and calls[0] <= horizon:
            calls.popleft()
        return calls


def update_priority(*, waited: float, unseen_chars: int) -> float:
    """Which answer's intermediate update goes next: the stalest, with the most text people have not seen.

    A few seconds of waiting weigh as much as a paragraph of new text.
    """
    return waited + unseen_chars / 200


# A final update expected to wait longer than this is worth a cheaper path.
REPOST_AFTER = 2.0


def cheaper_to_repost(*, update_wait: float, post_wait: float, delete_wait: float) -> bool:
    """Whether to post an answer's final part anew (and delete the stale message) instead of updating it.

    Worth it when chat.update's window is full for a while but the channel can take a post and the
    workspace a delete now: the complete answer shows seconds sooner, for one extra call.
    """
    return update_wait > REPOST_AFTER and post_wait + 0.5 < update_wait and delete_wait <= 0
