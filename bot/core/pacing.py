"""How to spend one workspace's Slack rate budget: sliding-window accounting per method, learned from 429s.

Pure: every method takes `now`, so tests drive it with a hand-made clock. The async scheduler that hands out
call slots (`bot.slack.pacer.Pacer`) decides *who* calls next; this decides *when* a call may go.

What a 429 teaches (Slack's windows are its own, and it counts calls this process never saw):
- Every 429 pauses its key until Retry-After: Slack's own word on when its window frees up.
- A 429 within one window of the budget's start teaches nothing more. After a restart, Slack still counts
  the previous process's calls, so "refused after 2 calls" says nothing about the limit.
- Otherwise the level (calls made in the window before the refused one) is a sample. One sample lowers
  the limit no further than a quarter of the tier: it may be skewed (another process sharing the app's
  budget, a burst). A second 429 that comes after the first pause ended, within two windows, confirms it:
  the limit drops to the level. 429s that arrive while the key is still paused are the same burst.
- Each full window without a 429 after the pause doubles a learned limit, up to the tier (never above);
  back at the tier it is forgotten. Idle windows and ended pauses are forgotten too, so keys scoped per
  channel do not pile up.

Replicas of the bot share one workspace's budget (`bot.storage.shared_budget`, on PostgreSQL): what it says
of a key, every replica's calls in the window and any replica's pause, is `observe`d here and replaces
what this budget recorded; learned limits stay each replica's own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    calls: int
    window: float  # seconds


# Slack's tiers (api.slack.com/apis/rate-limits), per workspace unless the key carries a scope such as a channel.
DEFAULT_LIMITS: dict[str, Limit] = {
    "chat.update": Limit(50, 60.0),  # Tier 3
    "chat.delete": Limit(50, 60.0),  # Tier 3
    "chat.postMessage": Limit(10, 10.0),  # about one a second per channel, with short bursts
    "chat.postEphemeral": Limit(100, 60.0),  # Tier 4
    "conversations.replies": Limit(50, 60.0),  # Tier 3 (far less for unlisted apps; 429s teach us)
    "users.info": Limit(100, 60.0),  # Tier 4
    # Slack documents only a "special", generous limit. Taken as Tier 4: an answer calls it once or twice (its
    # loading state, a retry's status, a clear), so this serves more new answers a minute than
    # chat.startStream (Tier 2) does; a 429 teaches a lower one, and a first sign of life that would wait
    # for it shows a placeholder instead.
    "assistant.threads.setStatus": Limit(100, 60.0),
    "chat.startStream": Limit(20, 60.0),  # Tier 2
    "chat.appendStream": Limit(100, 60.0),  # Tier 4
    "chat.stopStream": Limit(20, 60.0),  # Tier 2
}
# A call counts against its window this much longer than the window: Slack counts calls as they arrive, by
# its own clock, and a call sent exactly one window after another may arrive a little less than one after it.
EDGE_MARGIN = 0.5
FALLBACK_LIMIT = Limit(20, 60.0)  # Tier 2: the safe guess for a method not listed


def method_of(key: str) -> str:
    """Budget keys are a method, optionally scoped: `chat.postMessage#C123`."""
    return key.split("#", 1)[0]


# A single 429 never teaches a limit below this share of the tier; a confirmed one may.
SINGLE_SAMPLE_FLOOR = 0.25
# A second 429 within this many windows of the first (and after its pause) confirms a low limit.
CONFIRM_WINDOWS = 2
# How often (seconds of `now`) idle keys are swept out.
SWEEP_EVERY = 10.0


@dataclass
class _Learned:
    calls: int
    last_429: float  # when the last trusted 429 on the key came
    quiet_from: float  # when the key could be used again without a 429 since (pause end, or the last step up)


class CallBudget:
    """Which calls may go now, for one workspace. Never plans to exceed a limit; learns lower ones from 429s
    and probes back up toward the tier once they stop (see the module's docstring for the rule)."""

    def __init__(self, limits: dict[str, Limit] | None = None, *, started: float | None = None) -> None:
        self._tiers = dict(DEFAULT_LIMITS if limits is None else limits)
        self._calls: dict[str, deque[float]] = {}
        self._learned: dict[str, _Learned] = {}
        self._blocked_until: dict[str, float] = {}
        self._started = started  # when this budget began watching (the first `now` it saw, unless given)
        self._swept = started
        self.rate_limited_count = 0

    def tier(self, key: str) -> Limit:
        """The documented limit for `key` (its method's, for a scoped key)."""
        return self._tiers.get(key) or self._tiers.get(method_of(key)) or FALLBACK_LIMIT

    def limit(self, key: str) -> Limit:
        learned = self._learned.get(key)
        tier = self.tier(key)
        return tier if learned is None else Limit(learned.calls, tier.window)

    def used(self, key: str, now: float) -> int:
        self._seen(now)
        return len(self._window(key, now))

    def span(self, key: str) -> float:
        """How long a call on `key` counts against its window (the window and its edge margin)."""
        return self.tier(key).window + EDGE_MARGIN

    def allowed(self, key: str, now: float, *, reserve: int = 0) -> int:
        """Calls the window of `key` may hold before the next one waits, keeping `reserve` of them free (never
        fewer than one: a reserve may slow intermediate calls, never stop them). `wait_time`'s count."""
        self._seen(now)
        self._recover(key, now)
        return max(self.limit(key).calls - reserve, 1)

    def wait_time(self, key: str, now: float, *, reserve: int = 0) -> float:
        """Seconds until a call on `key` may go (0: now), keeping `reserve` calls of the window free."""
        self._seen(now)
        blocked = self._blocked_until.get(key, 0.0) - now
        if blocked > 0:
            return blocked
        self._recover(key, now)
        limit = self.limit(key)
        allowed = max(limit.calls - reserve, 1)  # as `allowed` says (inline: this runs before every call)
        calls = self._window(key, now)
        if len(calls) < allowed:
            return 0.0
        # The call `allowed` places from the newest must leave the window first.
        return calls[len(calls) - allowed] + limit.window + EDGE_MARGIN - now

    def record(self, key: str, now: float) -> None:
        self._seen(now)
        self._window(key, now)
        self._calls.setdefault(key, deque()).append(now)

    def observe(self, key: str, now: float, calls: Iterable[float], *, paused_until: float = 0.0) -> None:
        """What the workspace's shared budget says of `key`, on this budget's clock: its window (every
        replica's calls, this one's included) replaces the calls recorded here, and a pause some replica's
        429 set pauses the key here too. Learned limits stay this budget's own."""
        self._seen(now)
        horizon = now - self.span(key)
        window = deque(sorted(t for t in calls if t > horizon))
        if window:
            self._calls[key] = window
        else:
            self._calls.pop(key, None)
        if paused_until > now:
            self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), paused_until)

    def rate_limited(self, key: str, now: float, retry_after: float) -> None:
        """Slack said 429: pause the key until Retry-After, and maybe learn a lower limit (module docstring)."""
        self._seen(now)
        self.rate_limited_count += 1
        calls = self._window(key, now)
        if calls:
            calls.pop()  # the refused call was recorded when it went, but Slack did not count it
            if not calls:
                del self._calls[key]
        level = len(calls)
        in_burst = self._blocked_until.get(key, 0.0) > now
        until = max(self._blocked_until.get(key, 0.0), now + max(retry_after, 0.0))
        self._blocked_until[key] = until
        tier = self.tier(key)
        learned = self._learned.get(key)
        if learned is not None:
            learned.quiet_from = max(learned.quiet_from, until)  # no probing up while paused
        started = now if self._started is None else self._started
        if in_burst or now - started < tier.window:
            return  # the same burst as a 429 already heard, or a window that straddles our start
        self._recover(key, now)
        learned = self._learned.get(key)
        confirmed = learned is not None and now - learned.last_429 <= CONFIRM_WINDOWS * tier.window
        floor = 1 if confirmed else max(int(tier.calls * SINGLE_SAMPLE_FLOOR), 1)
        calls_now = min(max(level, floor), self.limit(key).calls)
        self._learned[key] = _Learned(calls=calls_now, last_429=now, quiet_from=until)

    def tracked_keys(self) -> set[str]:
        """Keys the budget holds any state for (a call in the window, a pause, a learned limit)."""
        return set(self._calls) | set(self._learned) | set(self._blocked_until)

    def _window(self, key: str, now: float) -> deque[float]:
        calls = self._calls.get(key)
        if calls is None:
            return deque()
        horizon = now - self.tier(key).window - EDGE_MARGIN
        while calls and calls[0] <= horizon:
            calls.popleft()
        if not calls:
            del self._calls[key]
        return calls

    def _recover(self, key: str, now: float) -> None:
        """Each full window without a 429 since the pause ended doubles a learned limit, up to the tier."""
        learned = self._learned.get(key)
        if learned is None:
            return
        tier = self.tier(key)
        steps = int((now - learned.quiet_from) // tier.window)
        if steps <= 0:
            return
        calls = learned.calls
        for _ in range(steps):
            calls = min(calls * 2, tier.calls)
            if calls >= tier.calls:
                del self._learned[key]
                return
        learned.calls = calls
        learned.quiet_from += steps * tier.window

    def _seen(self, now: float) -> None:
        """Note the first `now` (the start of watching) and sweep idle keys out now and then."""
        if self._started is None:
            self._started = now
        if self._swept is None:
            self._swept = now
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        for key in list(self._calls):
            self._window(key, now)
        for key, until in list(self._blocked_until.items()):
            if until <= now:
                del self._blocked_until[key]
        for key in list(self._learned):
            self._recover(key, now)


@dataclass(frozen=True)
class SharedWindow:
    """What the workspace's budget, shared by every replica of the bot, answered for one call on a key.

    Times are ages: seconds before the moment the shared budget decided, by its own clock, so each replica
    maps them onto its own (`now - age`) and no two replicas' clocks need agree.
    """

    granted: bool  # the call may go now, and is counted
    ages: tuple[float, ...]  # every call in the key's window, every replica's (the granted one included)
    paused_for: float  # seconds the key stays paused by a 429 some replica met (0: not paused)
    owed_elsewhere: int  # final calls the other replicas' answers are owed on this key


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
