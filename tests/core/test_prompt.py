from __future__ import annotations

import pytest

from bot.core.params import ModelParams
from bot.core.prompt import Draft, ThreadMessage, draft_prompt, fit_prompt, names_to_look_up, prompt_budget

BOT = "U0BOT"
NAMES = {"U0ADA": "Ada", "U0BOB": "Bob"}


def words(text: str) -> int:
    return len(text.split())  # a word a token: easy to reason about


def user(i: int, text: str, who: str | None = "U0ADA", tokens: int | None = None) -> ThreadMessage:
    return ThreadMessage(i, "user", text, who, tokens)


def answer(i: int, text: str, tokens: int | None = None) -> ThreadMessage:
    return ThreadMessage(i, "assistant", text, None, tokens)


@pytest.mark.parametrize(
    "messages,expected",
    [
        ([user(1, f"<@{BOT}> hi there")], [("user", "hi there", "Ada")]),
        (
            [user(1, f"<@{BOT}>"), answer(2, "help"), user(3, "ok")],
            [("assistant", "help", None), ("user", "ok", "Ada")],
        ),
        ([user(1, "ask <@U0BOB> and <@U0BOT>")], [("user", "ask @Bob and @Claude", "Ada")]),
        ([user(1, "who am I?", who="U0EVE")], [("user", "who am I?", None)]),
        ([user(1, "hi", who=None)], [("user", "hi", None)]),
        (
            [user(1, "q"), answer(2, "a <@U0ADA> &lt;3")],
            [("user", "q", "Ada"), ("assistant", "a <@U0ADA> &lt;3", None)],
        ),
    ],
)
def test_messages_become_labelled_readable_turns(
    messages: list[ThreadMessage], expected: list[tuple[str, str, str | None]]
) -> None:
    draft = draft_prompt(
        messages=messages,
        names=NAMES,
        bot_user_id=BOT,
        bot_name="Claude",
        system_prompt="be nice",
        params=ModelParams(),
        context_tokens=1000,
    )
    assert [(t.role, t.text, t.speaker) for t in draft.turns] == expected


def test_each_turn_keeps_its_message_and_stored_count() -> None:
    draft = draft_prompt(
        messages=[user(1, f"<@{BOT}>"), answer(2, "help", tokens=1), user(3, "q", tokens=3)],
        names=NAMES,
        bot_user_id=BOT,
        bot_name="Claude",
        system_prompt="s",
        params=ModelParams(max_tokens=100, prefix="A:"),
        context_tokens=1000,
    )
    assert draft.message_ids == [2, 3]
    assert [t.tokens for t in draft.turns] == [1, 3]
    assert (draft.system_prompt, draft.prefix, draft.budget_tokens) == ("s", "A:", 900)


@pytest.mark.parametrize(
    "messages,expected",
    [
        ([], set()),
        ([user(1, "hi"), user(2, "yo", who="U0BOB")], {"U0ADA", "U0BOB"}),
        ([user(1, f"<@{BOT}> ask <@U0CAT>")], {"U0ADA", "U0CAT"}),  # the bot's own name needs no look-up
        ([user(1, "hi", who=None), answer(2, "<@U0DAN>")], set()),  # answers are sent as written
    ],
)
def test_the_names_worth_looking_up(messages: list[ThreadMessage], expected: set[str]) -> None:
    assert names_to_look_up(messages=messages, bot_user_id=BOT) == expected


@pytest.mark.parametrize(
    "context,max_tokens,budget",
    [
        (1000, None, 750),  # a quarter of the window is left for the answer
        (1000, 100, 900),  # or what max_tokens asks for
        (1000, 900, 500),  # but never more than half
        (256, None, 192),
    ],
)
def test_the_prompt_budget_leaves_room_for_the_answer(context: int, max_tokens: int | None, budget: int) -> None:
    assert prompt_budget(context_tokens=context, max_tokens=max_tokens) == budget


def draft_of(messages: list[ThreadMessage], context: int = 1000) -> Draft:
    return draft_prompt(
        messages=messages,
        names=NAMES,
        bot_user_id=BOT,
        bot_name="Claude",
        system_prompt="s",
        params=ModelParams(),
        context_tokens=context,
    )


@pytest.mark.parametrize(
    "exact,stored,counted",
    [
        (True, [None, None, None], {1: 3, 2: 2, 3: 2}),  # "[Ada] one two", "a b", "[Ada] q"
        (True, [3, None, 2], {2: 2}),  # what was counted before is not counted again
        (False, [None, None, None], {}),  # a bound is never stored as a count
    ],
)
def test_exact_counting_reports_the_counts_it_made(
    exact: bool, stored: list[int | None], counted: dict[int, int]
) -> None:
    messages = [
        user(1, "one two", tokens=stored[0]),
        answer(2, "a b", tokens=stored[1]),
        user(3, "q", tokens=stored[2]),
    ]
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return words(text)

    assembly = fit_prompt(draft=draft_of(messages), count_tokens=count, exact=exact)
    assert assembly.counted == counted
    assert assembly.prompt.messages[1:] == [
        {"role": "user", "content": "[Ada] one two"},
        {"role": "assistant", "content": "a b"},
        {"role": "user", "content": "[Ada] q"},
    ]
    for text, known in zip(["[Ada] one two", "a b", "[Ada] q"], stored, strict=True):
        assert (text in seen) is (known is None)


def test_trimming_uses_the_counts_it_is_given() -> None:
    # By word count the two newest turns fit; stored counts say the middle answer is huge.
    messages = [user(1, "old"), answer(2, "tiny", tokens=10_000), user(3, "new question")]
    assembly = fit_prompt(draft=draft_of(messages, context=400), count_tokens=words, exact=True)
    assert assembly.prompt.trimmed
    assert assembly.prompt.messages[1:] == [{"role": "user", "content": "[Ada] new question"}]


def test_a_count_is_of_the_text_the_model_reads() -> None:
    assembly = fit_prompt(draft=draft_of([user(7, f"<@{BOT}> a <@U0BOB>")]), count_tokens=len, exact=True)
    assert assembly.counted == {7: len("[Ada] a @Bob")}
