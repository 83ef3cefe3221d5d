from __future__ import annotations

from typing import Any

import pytest

from bot.core.params import ModelParams, ParamError, parse_stop, request_body
from bot.core.personas import (
    DEFAULT_PROMPTS,
    MAX_SUGGESTED_PROMPTS,
    Persona,
    PersonaError,
    SuggestedPrompt,
    parse_catalog,
    parse_persona_command,
)


def test_request_body_carries_only_fields_the_api_accepts() -> None:
    params = ModelParams(
        model="m",
        temperature=0.2,
        top_p=0.9,
        max_tokens=100,
        stop=("END",),
        random_seed=7,
        safe_prompt=True,
        json_answers=True,
        prefix="ignored here",
    )
    body = request_body(params, [{"role": "user", "content": "q"}])
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "q"}],
        "stream": True,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 100,
        "stop": ["END"],
        "random_seed": 7,
        "safe_prompt": True,
        "response_format": {"type": "json_object"},
    }
    assert "seed" not in body and "prefix" not in body


def test_unset_settings_are_left_to_the_api() -> None:
    assert request_body(ModelParams(model="m"), []) == {"model": "m", "messages": [], "stream": True}


def test_persona_settings_layer_over_the_defaults() -> None:
    defaults = ModelParams(model="big", temperature=0.7, max_tokens=500)
    assert ModelParams(temperature=0.1).over(defaults) == ModelParams(model="big", temperature=0.1, max_tokens=500)


@pytest.mark.parametrize(
    "data",
    [
        {"temperature": 2.0},
        {"temperature": -0.1},
        {"top_p": 0},
        {"max_tokens": 0},
        {"random_seed": -1},
        {"seed": 3},
        {"temperature": True},
        {"stop": [1]},
        {"model": ""},
        {"safe_prompt": "yes"},
    ],
)
def test_invalid_settings_are_refused_before_any_request(data: dict[str, Any]) -> None:
    with pytest.raises(ParamError):
        ModelParams.from_mapping(data)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ('["\\n\\n", "END"]', ("\n\n", "END")),
        ("END, STOP", ("END", "STOP")),
        (None, None),
    ],
)
def test_parse_stop(raw: str | None, expected: tuple[str, ...] | None) -> None:
    assert parse_stop(raw) == expected


def test_parse_catalog() -> None:
    catalog = parse_catalog(
        {
            "personas": {
                "Support": {"system_prompt": "Be patient.", "temperature": 0.2},
                "json": {"system_prompt": "Answer in JSON.", "response_format": "json_object"},
            },
            "channels": {"C1": "support"},
        }
    )
    assert catalog.named["support"] == Persona("Be patient.", ModelParams(temperature=0.2), "support")
    assert catalog.named["json"].params.json_answers is True
    assert catalog.channels == {"C1": "support"}


def test_suggested_prompts_per_persona_then_the_files_default_then_built_in() -> None:
    catalog = parse_catalog(
        {
            "suggested_prompts": [{"title": "Plan", "message": " Plan my week. "}],
            "personas": {
                "Support": {
                    "system_prompt": "Be patient.",
                    "suggested_prompts": [{"title": "Reply", "message": "Help me reply to a customer."}],
                },
                "plain": {"system_prompt": "Be plain."},
            },
        }
    )
    assert catalog.named["support"] == Persona("Be patient.", name="support")  # prompts stay out of the persona
    assert catalog.prompts_for("support") == (SuggestedPrompt("Reply", "Help me reply to a customer."),)
    assert catalog.prompts_for("plain") == (SuggestedPrompt("Plan", "Plan my week."),)
    assert catalog.prompts_for(None) == (SuggestedPrompt("Plan", "Plan my week."),)
    assert parse_catalog({}).prompts_for("anyone") == DEFAULT_PROMPTS
    assert 1 <= len(DEFAULT_PROMPTS) <= MAX_SUGGESTED_PROMPTS


PROMPT = {"title": "t", "message": "m"}


@pytest.mark.parametrize(
    "data,fragment",
    [
        ({"personas": {"a": {"temperature": 0.1}}}, "system_prompt"),
        ({"suggested_prompts": [PROMPT] * 5}, r"\[\[suggested_prompts\]\] has 5 prompts; Slack shows at most 4"),
        ({"suggested_prompts": {"title": "t"}}, r"\[\[suggested_prompts\]\] must be an array of tables"),
        ({"suggested_prompts": [{"title": " ", "message": "m"}]}, "prompt 1 needs a non-empty title and message"),
        ({"suggested_prompts": [PROMPT, {"title": "t"}]}, "prompt 2 needs a non-empty title and message"),
        ({"suggested_prompts": [{**PROMPT, "icon": "x"}]}, "unknown key"),
        (
            {"personas": {"Support": {"system_prompt": "x", "suggested_prompts": [PROMPT] * 5}}},
            r"\[\[personas\.support\.suggested_prompts\]\] has 5 prompts",
        ),
        (
            {"personas": {"support": {"system_prompt": "x", "suggested_prompts": [{"title": "t", "message": ""}]}}},
            r"\[\[personas\.support\.suggested_prompts\]\] prompt 1 needs",
        ),
        ({"personas": {"a": {"system_prompt": "x", "temperature": 9}}}, "temperature"),
        ({"personas": {"a": {"system_prompt": "x", "seed": 1}}}, "seed"),
        ({"channels": {"C1": "missing"}}, "unknown persona"),
        ({"persona": {}}, "unknown top-level"),
    ],
)
def test_bad_catalogs_say_what_is_wrong(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PersonaError, match=fragment):
        parse_catalog(data)


@pytest.mark.parametrize(
    "text,verb,argument",
    [
        ("", "show", ""),
        ("  show ", "show", ""),
        ("list", "list", ""),
        ("reset", "reset", ""),
        ("set You are terse.", "set", "You are terse."),
        ("use Support", "use", "support"),
        ("help", "help", ""),
    ],
)
def test_persona_commands(text: str, verb: str, argument: str) -> None:
    command = parse_persona_command(text)
    assert (command.verb, command.argument) == (verb, argument)


@pytest.mark.parametrize("text", ["set", "use", "use two words", "dance", "set " + "x" * 9000])
def test_bad_persona_commands(text: str) -> None:
    with pytest.raises(PersonaError):
        parse_persona_command(text)
