from __future__ import annotations

import pytest

from bot.core.history import MESSAGE_OVERHEAD, TRUNCATION_MARK, HistoryTurn, build_prompt


def count(text: str) -> int:
    return len(text.split())  # a word a token: easy to reason about


def turns(n: int) -> list[HistoryTurn]:
    out = []
    for i in range(n):
        out.append(HistoryTurn("user", f"question {i} " + "pad " * 8, speaker="Ada"))
        out.append(HistoryTurn("assistant", f"answer {i} " + "pad " * 8))
    out.append(HistoryTurn("user", "last question", speaker="Bob"))
    return out


def test_everything_fits() -> None:
    prompt = build_prompt(system_prompt="be nice", turns=turns(2), budget_tokens=10_000, count_tokens=count)
    assert [m["role"] for m in prompt.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert prompt.messages[-1]["content"] == "[Bob] last question"
    assert prompt.dropped_turns == 0


@pytest.mark.parametrize("budget", [30, 50, 80, 120])
def test_oldest_turns_go_first_and_the_system_prompt_stays(budget: int) -> None:
    prompt = build_prompt(system_prompt="be nice", turns=turns(5), budget_tokens=budget, count_tokens=count)
    assert prompt.messages[0] == {"role": "system", "content": "be nice"}
    assert prompt.messages[1]["role"] == "user"  # never opens with an assistant turn
    assert prompt.messages[-1]["content"] == "[Bob] last question"
    assert prompt.tokens <= budget
    kept = [m["content"] for m in prompt.messages[1:]]
    full = [
        m["content"]
        for m in build_prompt(
            system_prompt="be nice", turns=turns(5), budget_tokens=10**6, count_tokens=count
        ).messages[1:]
    ]
    assert kept == full[len(full) - len(kept) :]  # a suffix: the newest turns, in order


def test_consecutive_user_turns_from_several_people_are_merged_with_labels() -> None:
    prompt = build_prompt(
        system_prompt="s",
        turns=[HistoryTurn("user", "hi", "Ada"), HistoryTurn("user", "hello", "Bob")],
        budget_tokens=100,
        count_tokens=count,
    )
    assert prompt.messages[1:] == [{"role": "user", "content": "[Ada] hi\n\n[Bob] hello"}]


def test_a_question_larger_than_the_context_is_truncated_with_a_mark() -> None:
    huge = HistoryTurn("user", "word " * 5_000, "Ada")
    prompt = build_prompt(system_prompt="s", turns=[huge], budget_tokens=200, count_tokens=count)
    assert prompt.truncated_question
    assert prompt.messages[-1]["content"].endswith(TRUNCATION_MARK)
    assert prompt.tokens <= 200


def test_a_prefix_is_sent_last_as_an_assistant_prefix_message() -> None:
    prompt = build_prompt(
        system_prompt="s", turns=[HistoryTurn("user", "q")], budget_tokens=100, count_tokens=count, prefix="Answer:"
    )
    assert prompt.messages[-1] == {"role": "assistant", "content": "Answer:", "prefix": True}


def test_the_last_turn_must_be_a_question() -> None:
    with pytest.raises(ValueError):
        build_prompt(system_prompt="s", turns=[HistoryTurn("assistant", "a")], budget_tokens=10, count_tokens=count)


def test_a_turn_whose_count_is_known_is_not_counted_again() -> None:
    counted: list[str] = []

    def counting(text: str) -> int:
        counted.append(text)
        return count(text)

    known = [HistoryTurn("user", "one two three", "Ada", tokens=4), HistoryTurn("assistant", "a b", tokens=2)]
    prompt = build_prompt(
        system_prompt="s", turns=[*known, HistoryTurn("user", "q", "Bob")], budget_tokens=100, count_tokens=counting
    )
    assert "[Ada] one two three" not in counted and "a b" not in counted
    assert "[Bob] q" in counted
    # system (1) and three messages (4, 2, 2), each with its overhead
    assert prompt.tokens == 1 + 4 + 2 + 2 + 4 * MESSAGE_OVERHEAD


@pytest.mark.parametrize(
    "budget,trimmed",
    [
        (10_000, False),  # everything fits
        (60, True),  # the oldest turns go
        (5, True),  # the question itself is cut
    ],
)
def test_trimmed_says_whether_the_budget_cut_anything(budget: int, trimmed: bool) -> None:
    prompt = build_prompt(system_prompt="s", turns=turns(3), budget_tokens=budget, count_tokens=count)
    assert prompt.trimmed is trimmed


def test_a_leading_answer_dropped_for_the_api_is_no_trimming() -> None:
    # A bare mention leaves only the help answer before the first question: it goes, but nothing was cut.
    prompt = build_prompt(
        system_prompt="s",
        turns=[HistoryTurn("assistant", "help text"), HistoryTurn("user", "q", "Ada")],
        budget_tokens=100,
        count_tokens=count,
    )
    assert prompt.dropped_turns == 1 and not prompt.trimmed
