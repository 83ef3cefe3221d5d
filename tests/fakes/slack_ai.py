"""The fake Slack's "AI experience" surfaces: loading states, agent-view prompts and titles, the Home tab,
thread history as unlisted apps get it, people stopping a native stream, and interactivity payloads.

`FakeSlack` inherits `AgentSurfaces`, so `_dispatch` finds these Web API handlers by name like its own. The
rules follow Slack's docs and the project's platform notes: a loading state clears when the app posts in
the thread or after two minutes; suggested prompts sent with `thread_ts` are silently ignored for agent apps;
`views.publish` takes a `home` view of at most 100 blocks; apps outside the Marketplace read thread history
at one request a minute, 15 messages at a time. Each error is the `ok: false` code the real API answers, so the
bot's fallbacks can be tested against what it would meet in production.

State lives in `functools.cached_property` attributes: created on first use per fake, without touching
`FakeSlack.__init__`, and assignable like plain attributes (`fake.status_refused = {"C1"}`).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

if TYPE_CHECKING:
    from tests.fakes.slack import Message

APP_ID = "A0APP"  # the api_app_id that the fake's event envelopes and Socket Mode hello carry
MAX_LOADING_MESSAGES = 10
MAX_LOADING_MESSAGE_CHARS = 50
MAX_SUGGESTED_PROMPTS = 4
MAX_HOME_BLOCKS = 100
MAX_VIEW_BYTES = 250_000  # views.publish answers view_too_large past 250 kB
STATUS_TTL = 120.0  # a loading state disappears two minutes after it was set if the app posts nothing
UNLISTED_REPLIES_MESSAGES = 15
_TS = re.compile(r"^\d+\.\d+$")


def _fake_slack() -> ModuleType:
    """slack.py imports this module for FakeSlack's base class, so its constants are read at call time."""
    from tests.fakes import slack

    return slack


def _error(code: str, *problems: str) -> dict[str, Any]:
    """An `ok: false` answer; schema failures carry `response_metadata.messages` as Slack's do."""
    body: dict[str, Any] = {"ok": False, "error": code}
    if problems:
        body["response_metadata"] = {"messages": [f"[ERROR] {p}" for p in problems]}
    return body


def _json_arg(value: Any) -> Any:
    """Arrays and objects arrive parsed in a JSON body but as JSON text in a form-encoded one."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _missing(args: dict[str, Any], *names: str) -> list[str]:
    return [f"missing required field: {name}" for name in names if not args.get(name)]


@dataclass(frozen=True)
class StatusChange:
    """One `assistant.threads.setStatus` call that Slack accepted: what it showed, and from when."""

    text: str
    loading_messages: tuple[str, ...]
    at: float  # time.monotonic(), comparable with Message.changed_at


@dataclass(frozen=True)
class SuggestedPrompts:
    """The prompts an agent app shows in a person's Messages tab (one set per DM channel)."""

    prompts: tuple[dict[str, str], ...]
    title: str | None


class AgentSurfaces:
    """Web API methods and test helpers for the bot's Slack AI experience; mixed into FakeSlack."""

    if TYPE_CHECKING:  # what the mixin uses of FakeSlack
        messages: dict[tuple[str, str], Message]
        deleted: list[Message]
        limits: dict[str, tuple[int, float]]
        not_in_channel: set[str]
        not_joined: set[str]
        responses: list[dict[str, Any]]
        users: dict[str, str]
        url: str

        def new_ts(self) -> str: ...

        def _writable(self, channel: str) -> str | None: ...

        async def post_http(
            self,
            url: str,
            body: bytes,
            *,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
            signed: bool = True,
        ) -> tuple[int, str]: ...

        async def send_envelope(
            self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, timeout: float = 3.0
        ) -> dict[str, Any]: ...

    # Settings tests may change (class defaults; assigning on a fake changes that fake only).
    status_ttl: float = STATUS_TTL
    status_refusal: str = "channel_type_not_supported"  # what setStatus answers in `status_refused` channels
    replies_max_messages: int | None = None  # set by limit_thread_history(): Slack's cap for unlisted apps

    # state, created on first use ----------------------------------------------------------------------

    @cached_property
    def status_refused(self) -> set[str]:
        """Channels where setStatus answers `status_refusal`, as in workspaces without loading states there."""
        return set()

    @cached_property
    def statuses(self) -> dict[tuple[str, str], list[StatusChange]]:
        """(channel, thread_ts) → every accepted setStatus, oldest first; read `status_of` for what shows."""
        return {}

    @cached_property
    def suggested_prompts(self) -> dict[str, SuggestedPrompts]:
        """Channel → the prompts set without `thread_ts` (those with it are ignored, as for agent apps)."""
        return {}

    @cached_property
    def thread_titles(self) -> dict[tuple[str, str], str]:
        return {}

    @cached_property
    def home_views(self) -> dict[str, dict[str, Any]]:
        """User → the Home tab view last published for them, as views.publish answered it."""
        return {}

    @cached_property
    def streams_stopped_by_user(self) -> dict[tuple[str, str], str]:
        """(channel, ts) of a native stream → the person who pressed stop in Slack."""
        return {}

    @cached_property
    def interactions(self) -> list[dict[str, Any]]:
        """Interactive payloads delivered to the app (HTTP or Socket Mode), in order."""
        return []

    @cached_property
    def _interaction_ids(self) -> itertools.count[int]:
        return itertools.count(1)

    # assistant.threads.* ------------------------------------------------------------------------------

    def _assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        problems = _missing(args, "channel_id", "thread_ts")
        if "status" not in args:
            problems.append("missing required field: status")
        loading: Any = ()
        if args.get("loading_messages") is not None:
            loading = _json_arg(args["loading_messages"])
            if (
                not isinstance(loading, list)
                or not 1 <= len(loading) <= MAX_LOADING_MESSAGES
                or not all(isinstance(m, str) and 0 < len(m) <= MAX_LOADING_MESSAGE_CHARS for m in loading)
            ):
                problems.append(
                    f"loading_messages must hold 1 to {MAX_LOADING_MESSAGES} strings of at most "
                    f"{MAX_LOADING_MESSAGE_CHARS} characters [json-pointer:/loading_messages]"
                )
        if problems:
            return _error("invalid_arguments", *problems)
        channel, thread_ts = str(args["channel_id"]), str(args["thread_ts"])
        refused = self._writable(channel) or (self.status_refusal if channel in self.status_refused else None)
        if refused:
            return _error(refused)
        if not _TS.match(thread_ts):
            return _error("invalid_thread_ts")
        change = StatusChange(str(args["status"] or ""), tuple(loading), time.monotonic())
        self.statuses.setdefault((channel, thread_ts), []).append(change)
        return {"ok": True}

    def _assistant_threads_setSuggestedPrompts(self, args: dict[str, Any]) -> dict[str, Any]:
        problems = _missing(args, "channel_id")
        prompts = _json_arg(args.get("prompts"))
        if (
            not isinstance(prompts, list)
            or not 1 <= len(prompts) <= MAX_SUGGESTED_PROMPTS
            or not all(isinstance(p, dict) and _text(p.get("title")) and _text(p.get("message")) for p in prompts)
        ):
            problems.append(
                f"prompts must hold 1 to {MAX_SUGGESTED_PROMPTS} objects with a title and a message "
                "[json-pointer:/prompts]"
            )
        if problems:
            return _error("invalid_arguments", *problems)
        channel = str(args["channel_id"])
        error = self._writable(channel)
        if error:
            return _error(error)
        if args.get("thread_ts"):
            return {"ok": True}  # agent apps: accepted, and nothing changes (Slack's documented behaviour)
        title = args.get("title")
        self.suggested_prompts[channel] = SuggestedPrompts(
            tuple({"title": p["title"], "message": p["message"]} for p in prompts), str(title) if title else None
        )
        return {"ok": True}

    def _assistant_threads_setTitle(self, args: dict[str, Any]) -> dict[str, Any]:
        problems = _missing(args, "channel_id", "thread_ts", "title")
        if problems:
            return _error("invalid_arguments", *problems)
        channel, thread_ts = str(args["channel_id"]), str(args["thread_ts"])
        error = self._writable(channel)
        if error:
            return _error(error)
        if not _TS.match(thread_ts):
            return _error("invalid_thread_ts")
        self.thread_titles[(channel, thread_ts)] = str(args["title"])
        return {"ok": True}

    # views.publish (the Home tab) -----------------------------------------------------------------------

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        problems = _missing(args, "user_id", "view")
        view = _json_arg(args.get("view"))
        if "view" in args and not isinstance(view, dict):
            problems.append("must provide an object [json-pointer:/view]")
        elif isinstance(view, dict):
            blocks = view.get("blocks")
            if view.get("type") != "home":
                problems.append("must be one of: home [json-pointer:/view/type]")
            if not isinstance(blocks, list):
                problems.append("must provide an array [json-pointer:/view/blocks]")
            elif len(blocks) > MAX_HOME_BLOCKS:
                problems.append(f"no more than {MAX_HOME_BLOCKS} items allowed [json-pointer:/view/blocks]")
            elif not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
                problems.append("each block must be an object with a type [json-pointer:/view/blocks]")
        if problems:
            return _error("invalid_arguments", *problems)
        assert isinstance(view, dict)
        if len(json.dumps(view).encode()) > MAX_VIEW_BYTES:
            return _error("view_too_large")
        user = str(args["user_id"])
        current = self.home_views.get(user)
        if args.get("hash") and (current is None or args["hash"] != current["hash"]):
            return _error("hash_conflict")
        slack = _fake_slack()
        published = {
            "id": current["id"] if current else f"V0HOME{len(self.home_views) + 1}",
            "team_id": slack.TEAM,
            "type": "home",
            "blocks": view["blocks"],
            "private_metadata": str(view.get("private_metadata") or ""),
            "callback_id": str(view.get("callback_id") or ""),
            "external_id": str(view.get("external_id") or ""),
            "state": {"values": {}},
            "hash": self.new_ts(),  # changes on every publish, as Slack's does
            "app_id": APP_ID,
            "bot_id": slack.BOT_ID,
        }
        self.home_views[user] = published
        return {"ok": True, "view": published}

    # conversations.replies (called from FakeSlack._conversations_replies) --------------------------------

    def limit_thread_history(
        self, *, calls: int = 1, window: float = 60.0, max_messages: int = UNLISTED_REPLIES_MESSAGES
    ) -> None:
        """Read thread history as an app distributed outside the Marketplace does since 2025-05-29.

        conversations.replies and conversations.history allow `calls` requests per `window` seconds per
        workspace (then HTTP 429 `ratelimited`, with Retry-After from `FakeSlack.retry_after`), and return at
        most `max_messages` messages per request with `has_more: true`.
        """
        self.limits["conversations.replies"] = (calls, window)
        self.limits["conversations.history"] = (calls, window)
        self.replies_max_messages = max_messages

    def history_refusal(self, channel: str) -> str | None:
        """Why the bot may not read this conversation's history: `None` when it may.

        Bots read only conversations they are members of: the fake's `not_in_channel` channels and the public
        channels it has not joined (`not_joined`) answer `not_in_channel`; an empty id `channel_not_found`.
        """
        if not channel:
            return "channel_not_found"
        if channel in self.not_in_channel or channel in self.not_joined:
            return "not_in_channel"
        return None

    def replies_page(self, thread: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        """One page of a thread (oldest first), as conversations.replies answers it.

        `limit` and `cursor` are honoured and capped at `replies_max_messages`; `has_more` and the next page's
        cursor say what is left, so a bot that reads only the first page sees what it would miss.
        """
        try:
            limit = int(args.get("limit") or 0) or len(thread)
        except (TypeError, ValueError):
            return _error("invalid_limit")
        if self.replies_max_messages is not None:
            limit = min(limit, self.replies_max_messages)
        start = 0
        cursor = str(args.get("cursor") or "")
        if cursor:
            if not cursor.startswith("ts:"):
                return _error("invalid_cursor")
            start = next((i for i, m in enumerate(thread) if m["ts"] >= cursor[3:]), len(thread))
        page = thread[start : start + max(limit, 1)]
        rest = thread[start + len(page) :]
        body: dict[str, Any] = {"ok": True, "messages": page, "has_more": bool(rest)}
        if rest:
            body["response_metadata"] = {"next_cursor": f"ts:{rest[0]['ts']}"}
        return body

    # loading states: what a person sees -------------------------------------------------------------------

    def status_of(self, channel: str, thread_ts: str) -> str:
        """The loading state shown in a thread now: "" once it was cleared, expired, or the app posted there.

        Computed when read, by comparing the last setStatus with the app's own posts in that thread (kept or
        since deleted), so the posting handlers need no hook.
        """
        changes = self.statuses.get((channel, thread_ts))
        if not changes or not changes[-1].text:
            return ""
        last = changes[-1]
        if time.monotonic() - last.at >= self.status_ttl:
            return ""
        bot_user = _fake_slack().BOT_USER
        for message in itertools.chain(self.messages.values(), self.deleted):
            if (
                message.channel == channel
                and message.thread_ts == thread_ts
                and message.user == bot_user
                and message.changed_at
                and message.changed_at[0] > last.at
            ):
                return ""
        return last.text

    def status_history(self, channel: str, thread_ts: str) -> list[StatusChange]:
        return list(self.statuses.get((channel, thread_ts), []))

    def prompts_for(self, channel: str) -> SuggestedPrompts | None:
        return self.suggested_prompts.get(channel)

    def title_of(self, channel: str, thread_ts: str) -> str | None:
        return self.thread_titles.get((channel, thread_ts))

    def home_view(self, user: str) -> dict[str, Any] | None:
        return self.home_views.get(user)

    # people stopping a native stream ------------------------------------------------------------------------

    def stop_stream_by_user(self, channel: str, ts: str, user: str) -> None:
        """A person presses stop on a streaming answer: the message keeps the text shown so far, the stream is
        over, and the app's next appendStream / stopStream answer `stopped_by_user`."""
        message = self.messages.get((channel, ts))
        if message is None or not message.streaming:
            raise ValueError(f"no native stream at {channel}/{ts} to stop")
        message.streaming = False
        self.streams_stopped_by_user[(channel, ts)] = user

    def stopped_by_user(self, channel: str, ts: str) -> str | None:
        """The error chat.appendStream / chat.stopStream answer for a stream a person stopped, else None."""
        return "stopped_by_user" if (channel, ts) in self.streams_stopped_by_user else None

    # interactivity: payloads as Slack builds them -----------------------------------------------------------

    def _person(self, user: str) -> dict[str, Any]:
        name = self.users.get(user, user.lower())
        return {"id": user, "username": user.lower(), "name": name, "team_id": _fake_slack().TEAM}

    def _message_seen(
        self, channel: str, message_ts: str, thread_ts: str | None, blocks: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """The clicked message as the payload carries it, from what the fake shows now."""
        slack = _fake_slack()
        found = self.messages.get((channel, message_ts))
        message: dict[str, Any] = {
            "type": "message",
            "ts": message_ts,
            "text": found.text if found else "",
            "user": found.user if found else slack.BOT_USER,
            "team": slack.TEAM,
            "blocks": list(blocks or []),
        }
        if found is None or found.bot_id:
            message.update(bot_id=slack.BOT_ID, app_id=APP_ID)
        if thread_ts:
            message["thread_ts"] = thread_ts
        return message

    def _interaction_common(self, user: str, channel: str) -> dict[str, Any]:
        n = next(self._interaction_ids)
        slack = _fake_slack()
        return {
            "token": "legacy",
            "team": {"id": slack.TEAM, "domain": "test"},
            "user": self._person(user),
            "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else "general"},
            "is_enterprise_install": False,
            "enterprise": None,
            "response_url": f"{self.url}/response/{self.new_ts()}",
            "trigger_id": f"{n}.{n}.fake{n:04d}",
        }

    def block_action(
        self,
        user: str,
        channel: str,
        message_ts: str,
        thread_ts: str | None,
        action_id: str,
        value: str,
        *,
        block_id: str = "answer_actions",
        action_type: Literal["button", "feedback_buttons"] = "button",
        container: dict[str, Any] | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends when `user` clicks a button (or a feedback button, whose
        `value` tells which one) in the message `message_ts`; `blocks` are the message's blocks, if it matters."""
        action_ts = self.new_ts()  # on the same clock as message ts, as in Slack
        action: dict[str, Any] = {"type": action_type, "action_id": action_id, "block_id": block_id}
        if action_type == "button":
            action["text"] = {"type": "plain_text", "text": value, "emoji": True}
        action.update(value=value, action_ts=action_ts)
        default_container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if thread_ts:
            default_container["thread_ts"] = thread_ts
        return {
            "type": "block_actions",
            **self._interaction_common(user, channel),
            "api_app_id": APP_ID,
            "container": container if container is not None else default_container,
            "message": self._message_seen(channel, message_ts, thread_ts, blocks),
            "state": {"values": {}},
            "actions": [action],
        }

    def message_shortcut(
        self, user: str, channel: str, message_ts: str, thread_ts: str | None, callback_id: str
    ) -> dict[str, Any]:
        """The `message_action` payload of a message shortcut (`features.shortcuts`, type `message`)."""
        return {
            "type": "message_action",
            **self._interaction_common(user, channel),
            "callback_id": callback_id,
            "action_ts": self.new_ts(),
            "message_ts": message_ts,
            "message": self._message_seen(channel, message_ts, thread_ts, None),
        }

    async def deliver_interactive_http(self, url: str, payload: dict[str, Any]) -> tuple[int, str]:
        """POST an interactive payload as Slack does: form-encoded `payload=<json>`, signed like events."""
        self.interactions.append(payload)
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post_http(url, body, content_type="application/x-www-form-urlencoded")

    async def deliver_interactive_socket(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an interactive payload over Socket Mode; returns the app's ack (fails past 3 s without one)."""
        self.interactions.append(payload)
        return await self.send_envelope("interactive", payload)

    def response_url_posts(self, *, response_type: str | None = None) -> list[dict[str, Any]]:
        """What the app posted to response_urls (`FakeSlack.responses`), optionally of one `response_type`.

        Bolt's `respond()` posts JSON, so `replace_original` / `delete_original` / `response_type` are read as
        sent; the fake records them and leaves the original message unchanged.
        """
        return [r for r in self.responses if response_type is None or r.get("response_type") == response_type]
