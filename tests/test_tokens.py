"""Token counting: a byte count by default, Tekken loaded lazily (in a worker thread) when a prompt may not fit."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import aiosqlite
import pytest

from bot.core.params import ModelParams
from bot.core.prompt import Draft, ThreadMessage, draft_prompt, fit_prompt
from bot.tokens import ByteBound, Counter, TokenCounter
from tests.conftest import Harness
from tests.fakes.slack import BOT_USER

CHANNEL = "C0GENERAL"


class Words:
    """A fake exact counter: a word a token. Records what it counted, and in which threads."""

    exact = True

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.threads: set[int] = set()

    def count(self, text: str) -> int:
        self.texts.append(text)
        self.threads.add(threading.get_ident())
        return len(text.split())


class Loader:
    """Stands in for loading Tekken: counts its calls and notes the thread it ran in."""

    def __init__(self, counter: Counter | None = None, *, fail: bool = False) -> None:
        self.counter = counter or Words()
        self.fail = fail
        self.calls = 0
        self.threads: set[int] = set()

    def __call__(self) -> Counter:
        self.calls += 1
        self.threads.add(threading.get_ident())
        if self.fail:
            raise OSError("no tokenizer file")
        return self.counter


def draft(texts: list[str], *, context: int, known: dict[int, int] | None = None) -> Draft:
    """Turns alternate between Ada and the bot; message ids count from 1; `known` are stored counts."""
    known = known or {}
    messages = [
        ThreadMessage(i, "user" if i % 2 else "assistant", text, "U0ADA" if i % 2 else None, known.get(i))
        for i, text in enumerate(texts, start=1)
    ]
    return draft_prompt(
        messages=messages,
        names={"U0ADA": "Ada"},
        bot_user_id=BOT_USER,
        bot_name="assistant",
        system_prompt="be nice",
        params=ModelParams(),
        context_tokens=context,
    )


def test_the_byte_count_is_a_bound_and_not_exact() -> None:
    bound = ByteBound()
    assert not bound.exact
    assert [bound.count(t) for t in ["", "abc", "日本", "🎉"]] == [0, 3, 6, 4]


async def test_a_prompt_that_fits_by_bytes_is_never_counted_exactly() -> None:
    loader = Loader()
    tokens = TokenCounter(load_exact=loader)
    assembly = await tokens.fit(draft(["hello", "hi! how can I help?", "tell me a joke"], context=1000))
    assert loader.calls == 0 and not tokens.loaded
    assert assembly.counted == {} and not assembly.prompt.trimmed
    assert [m["content"] for m in assembly.prompt.messages] == [
        "be nice",
        "[Ada] hello",
        "hi! how can I help?",
        "[Ada] tell me a joke",
    ]


async def test_near_the_budget_exact_counts_decide_the_trimming_off_the_event_loop() -> None:
    loader = Loader()
    tokens = TokenCounter(load_exact=loader)
    # 256 tokens of context leave 192 for the prompt. By bytes this thread is far over; by words
    # (the fake's exact count) only the oldest turns must go.
    texts = [("old " * 70).strip(), ("reply " * 60).strip(), ("newer " * 40).strip(), "ok", "last question"]
    thread = draft(texts, context=256)
    assembly = await tokens.fit(thread)
    assert loader.calls == 1 and tokens.loaded
    words = loader.counter
    assert isinstance(words, Words)
    assert threading.get_ident() not in loader.threads | words.threads  # loading and counting: worker threads
    assert assembly.prompt == fit_prompt(draft=thread, count_tokens=Words().count, exact=True).prompt
    assert assembly.prompt.trimmed and assembly.prompt.dropped_turns == 2
    assert [m["content"] for m in assembly.prompt.messages[1:]] == [
        "[Ada] " + texts[2],
        "ok",
        "[Ada] last question",
    ]
    assert assembly.counted == {1: 71, 2: 60, 3: 41, 4: 1, 5: 3}  # every message, once: for the store


async def test_turns_already_counted_are_not_counted_again() -> None:
    loader = Loader()
    tokens = TokenCounter(load_exact=loader)
    thread = draft([("old " * 300).strip(), "fine", "and now?"], context=256, known={1: 301})
    assembly = await tokens.fit(thread)
    words = loader.counter
    assert isinstance(words, Words)
    assert not [t for t in words.texts if t.startswith("[Ada] old")]
    assert assembly.counted == {2: 1, 3: 3}


async def test_concurrent_prompts_share_one_load() -> None:
    loader = Loader()
    tokens = TokenCounter(load_exact=loader)
    big = draft([("word " * 100).strip()], context=256)
    await asyncio.gather(*(tokens.fit(big) for _ in range(5)))
    assert loader.calls == 1


async def test_without_the_tokenizer_the_byte_bound_trims_and_nothing_is_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader = Loader(fail=True)
    tokens = TokenCounter(load_exact=loader)
    big = draft([("word " * 100).strip(), "ok", "q"], context=256)
    with caplog.at_level(logging.WARNING, logger="bot.tokens"):
        first = await tokens.fit(big)
        await tokens.fit(big)
    assert loader.calls == 1  # not tried again on every turn
    assert "could not load" in caplog.text
    assert first.counted == {} and first.prompt.trimmed
    assert first.prompt.tokens <= big.budget_tokens


def test_the_real_tekken_tokenizer_counts_within_the_byte_bound() -> None:
    """LOADS THE REAL TEKKEN TOKENIZER (about 2 s and 140 MB): the one test that checks it works."""
    pytest.importorskip("mistral_common")
    from bot.tokens import Tekken

    tekken = Tekken()
    assert tekken.exact
    assert tekken.count("hello world") == 2
    bound = ByteBound()
    awkward = ["a3f9c2e1b7d4" * 20, "🙂🙃🥲" * 10, "你好，世界" * 10, "SGVsbG8gd29y" * 20, "x = [i**2 for i in r]\n"]
    for text in awkward:
        assert 0 < tekken.count(text) <= bound.count(text)


# through the bot -------------------------------------------------------------------------------------------


def mention(text: str) -> str:
    return f"<@{BOT_USER}> {text}"


async def test_a_short_conversation_is_answered_without_loading_the_tokenizer(http_harness: Harness) -> None:
    h = http_harness
    bot = await h.start()
    event = h.slack.user_message(CHANNEL, "U0ADA", mention("best cheese?"))
    await h.deliver(event)
    await h.settle()
    reply = h.slack.user_message(CHANNEL, "U0ADA", "and wine?", thread_ts=event["ts"])
    await h.deliver(reply)
    await h.settle()
    assert len(h.mistral.chat_requests) == 2
    assert not bot.conversations.context.tokens.loaded


async def stored_counts(path: Path) -> list[tuple[str, int | None]]:
    async with aiosqlite.connect(path) as db, db.execute("SELECT role, tokens FROM messages ORDER BY id") as cursor:
        return [(r[0], r[1]) for r in await cursor.fetchall()]


async def test_counts_are_stored_once_and_reused_on_the_next_turn(http_harness: Harness) -> None:
    h = http_harness
    bot = await h.start(MISTRAL_CONTEXT_TOKENS="256", SYSTEM_PROMPT="Be brief.")
    loader = Loader()
    bot.conversations.context.tokens = TokenCounter(load_exact=loader)
    words = loader.counter
    assert isinstance(words, Words)

    question = mention(" ".join(f"w{i}" for i in range(60)))  # over 192 bytes: counted exactly
    event = h.slack.user_message(CHANNEL, "U0ADA", question)
    await h.deliver(event)
    await h.settle()
    assert loader.calls == 1
    first_turn = list(words.texts)
    assert any(t.startswith("[Ada] w0 w1") for t in first_turn)
    assert await stored_counts(h.tmp_path / "bot.db") == [("user", 61), ("assistant", None)]

    words.texts.clear()
    follow = h.slack.user_message(CHANNEL, "U0ADA", "and then?", thread_ts=event["ts"])
    await h.deliver(follow)
    await h.settle()
    # The first question is not counted again; the answer and the new question are, once each.
    assert not [t for t in words.texts if t.startswith("[Ada] w0 w1")]
    answer = h.slack.bot_replies(CHANNEL, event["ts"])[0].text
    assert answer.startswith("You said:")
    assert await stored_counts(h.tmp_path / "bot.db") == [
        ("user", 61),
        ("assistant", 63),  # "You said: [Ada] w0 … w59"
        ("user", 3),  # "[Ada] and then?"
        ("assistant", None),
    ]
    assert loader.calls == 1
