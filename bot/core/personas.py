"""Personas: named system prompts with model settings, per-channel defaults, and the `/persona` grammar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.params import ModelParams, ParamError

MAX_PROMPT_CHARS = 8_000
MAX_SUGGESTED_PROMPTS = 4  # what assistant.threads.setSuggestedPrompts takes


@dataclass(frozen=True)
class Persona:
    """The system prompt and model settings a conversation runs with; `name` is None for a custom one.

    `params` holds only what the persona overrides; the deployment's defaults fill in the rest.
    """

    system_prompt: str
    params: ModelParams = field(default_factory=ModelParams)
    name: str | None = None


class PersonaError(ValueError):
    """A persona definition or command is invalid; the message is fit to show to the person."""


@dataclass(frozen=True)
class SuggestedPrompt:
    """A prompt the Messages tab offers: `title` on the button, `message` sent as the person's question."""

    title: str
    message: str


# Offered when PERSONAS_FILE suggests nothing (the manifest's agent_view lists the same, for when the bot is away).
# A click sends the message at once, so each one stands on its own.
DEFAULT_PROMPTS: tuple[SuggestedPrompt, ...] = (
    SuggestedPrompt("Summarize a text", "I'll paste a text: summarize it in a few bullet points."),
    SuggestedPrompt("Explain code", "I'll paste some code: explain what it does, step by step."),
    SuggestedPrompt("Draft a message", "Help me draft a friendly message: ask me whom it is for and what to say."),
    SuggestedPrompt("Brainstorm", "Let's brainstorm: ask me for the topic, then suggest ten varied ideas."),
)


@dataclass(frozen=True)
class Catalog:
    """What `PERSONAS_FILE` defines: named personas, channel IDs → the name of their default, and the
    Messages tab's suggested prompts (per persona name, and a default list).

    Prompts live here, looked up by persona name, rather than on `Persona`: a persona is stored with every
    conversation, and a suggestion list is no part of how a conversation runs.
    """

    named: dict[str, Persona] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, tuple[SuggestedPrompt, ...]] = field(default_factory=dict)
    default_prompts: tuple[SuggestedPrompt, ...] = ()

    def prompts_for(self, name: str | None) -> tuple[SuggestedPrompt, ...]:
        """The persona's own prompts, else the file's default list, else the built-in ones."""
        return (name is not None and self.prompts.get(name)) or self.default_prompts or DEFAULT_PROMPTS


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Validate a parsed TOML document; every problem names the table it is in."""
    unknown = sorted(set(data) - {"personas", "channels", "suggested_prompts"})
    if unknown:
        raise PersonaError(
            f"unknown top-level table(s): {', '.join(unknown)} "
            "(expected [personas.*], [channels], [[suggested_prompts]])"
        )
    named: dict[str, Persona] = {}
    prompts: dict[str, tuple[SuggestedPrompt, ...]] = {}
    for name, table in (data.get("personas") or {}).items():
        if not isinstance(table, dict):
            raise PersonaError(f"[personas.{name}] must be a table")
        settings = dict(table)
        if "suggested_prompts" in settings:
            where = f"[[personas.{name.lower()}.suggested_prompts]]"
            prompts[name.lower()] = parse_prompts(settings.pop("suggested_prompts"), where)
        named[name.lower()] = persona_from_table(name.lower(), settings)
    channels: dict[str, str] = {}
    for channel, name in (data.get("channels") or {}).items():
        if not isinstance(name, str) or name.lower() not in named:
            raise PersonaError(f"[channels] {channel} names an unknown persona {name!r}")
        channels[channel] = name.lower()
    default_prompts = parse_prompts(data.get("suggested_prompts", []), "[[suggested_prompts]]")
    return Catalog(named, channels, prompts, default_prompts)


def parse_prompts(raw: Any, where: str) -> tuple[SuggestedPrompt, ...]:
    """An array of `{title, message}` tables, as many as Slack shows at most."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise PersonaError(f"{where} must be an array of tables with a title and a message")
    if len(raw) > MAX_SUGGESTED_PROMPTS:
        raise PersonaError(f"{where} has {len(raw)} prompts; Slack shows at most {MAX_SUGGESTED_PROMPTS}")
    prompts = []
    for number, item in enumerate(raw, 1):
        unknown = sorted(set(item) - {"title", "message"})
        if unknown:
            raise PersonaError(f"{where} prompt {number}: unknown key(s) {', '.join(unknown)}")
        title, message = item.get("title"), item.get("message")
        if not isinstance(title, str) or not title.strip() or not isinstance(message, str) or not message.strip():
            raise PersonaError(f"{where} prompt {number} needs a non-empty title and message")
        prompts.append(SuggestedPrompt(title.strip(), message.strip()))
    return tuple(prompts)


def persona_from_table(name: str, table: dict[str, Any]) -> Persona:
    settings = dict(table)
    prompt = settings.pop("system_prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise PersonaError(f"[personas.{name}] needs a non-empty system_prompt")
    if "response_format" in settings:  # accept the API's own spelling too
        settings["json_answers"] = settings.pop("response_format") == "json_object"
    try:
        params = ModelParams.from_mapping(settings)
    except ParamError as exc:
        raise PersonaError(f"[personas.{name}] {exc}") from None
    return Persona(system_prompt=prompt.strip(), params=params, name=name)


@dataclass(frozen=True)
class PersonaCommand:
    verb: str  # "show" | "set" | "reset" | "list" | "use" | "help"
    argument: str = ""


def parse_persona_command(text: str) -> PersonaCommand:
    verb, _, rest = text.strip().partition(" ")
    verb = verb.lower()
    rest = rest.strip()
    if not verb:
        return PersonaCommand("show")
    if verb in ("show", "list", "reset", "help") and not rest:
        return PersonaCommand(verb)
    if verb == "set":
        if not rest:
            raise PersonaError("Usage: `/persona set <system prompt>`")
        if len(rest) > MAX_PROMPT_CHARS:
            raise PersonaError(f"That system prompt is {len(rest):,} characters; the limit is {MAX_PROMPT_CHARS:,}.")
        return PersonaCommand("set", rest)
    if verb == "use":
        if not rest or " " in rest:
            raise PersonaError("Usage: `/persona use <name>` (see `/persona list`)")
        return PersonaCommand("use", rest.lower())
    raise PersonaError(f"I don't know `/persona {text.strip()[:40]}`.")


def describe(persona: Persona, effective: ModelParams) -> str:
    """A private, readable summary of a channel's persona (Slack mrkdwn)."""
    title = f"*Persona:* `{persona.name}`" if persona.name else "*Persona:* custom for this channel"
    settings = [f"model `{effective.model}`"]
    for label, value in (
        ("temperature", effective.temperature),
        ("top_p", effective.top_p),
        ("max_tokens", effective.max_tokens),
        ("stop", list(effective.stop) if effective.stop else None),
        ("random_seed", effective.random_seed),
        ("safe_prompt", effective.safe_prompt),
        ("JSON answers", effective.json_answers),
        ("prefix", effective.prefix),
    ):
        if value is not None:
            settings.append(f"{label} `{value}`")
    prompt = persona.system_prompt.replace("```", "'''")
    return f"{title}\n*Settings:* {', '.join(settings)}\n*System prompt:*\n```{prompt}```"
