"""The model settings a deployment or a persona may choose, validated against what Mistral's API accepts.

Validation happens here, before any request is built, so a bad value becomes a clear message for a person
instead of a 422 from the API.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MAX_STOP_SEQUENCES = 16


class ParamError(ValueError):
    """A model setting is out of range; `setting_env` names the environment variable when there is one."""

    def __init__(self, message: str, setting_env: str | None = None) -> None:
        super().__init__(message)
        self.setting_env = setting_env


@dataclass(frozen=True)
class ModelParams:
    """Request settings; `None` means "leave it to the API's default" and is never sent."""

    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    random_seed: int | None = None
    safe_prompt: bool | None = None
    json_answers: bool | None = None
    prefix: str | None = None

    def validate(self) -> None:
        if self.model is not None and not self.model.strip():
            raise ParamError("model must not be empty", "MISTRAL_MODEL")
        if self.temperature is not None and not 0 <= self.temperature <= 1.5:
            raise ParamError("temperature must be between 0 and 1.5", "MISTRAL_TEMPERATURE")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ParamError("top_p must be greater than 0 and at most 1", "MISTRAL_TOP_P")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ParamError("max_tokens must be at least 1", "MISTRAL_MAX_TOKENS")
        if self.random_seed is not None and self.random_seed < 0:
            raise ParamError("random_seed must be zero or more", "MISTRAL_RANDOM_SEED")
        if self.stop is not None:
            if len(self.stop) > MAX_STOP_SEQUENCES or any(not s for s in self.stop):
                raise ParamError(f"stop takes 1 to {MAX_STOP_SEQUENCES} non-empty sequences", "MISTRAL_STOP")
        if self.prefix is not None and not self.prefix:
            raise ParamError("prefix must not be empty")

    def over(self, base: ModelParams) -> ModelParams:
        """These settings layered over `base`: every field set here wins."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **changes)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_stored(cls, raw: str) -> ModelParams:
        """Settings saved by `to_json`, read back as they were saved, without validating them again.

        They were validated when the persona was set or `PERSONAS_FILE` was read; a rule tightened since
        must not break a thread or channel that began under the old one. A setting this version no longer
        knows is dropped.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in json.loads(raw).items() if k in known}
        if isinstance(values.get("stop"), list):
            values["stop"] = tuple(values["stop"])
        return cls(**values)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> ModelParams:
        """Parse and validate a mapping (a `PERSONAS_FILE` table); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParamError(f"unknown setting(s): {', '.join(unknown)}")
        values = dict(data)
        if "stop" in values:
            values["stop"] = _stop_tuple(values["stop"])
        _check_types(values)
        params = cls(**values)
        params.validate()
        return params


def parse_stop(raw: str | None) -> tuple[str, ...] | None:
    """`MISTRAL_STOP`: a JSON list (`["\\n\\n", "END"]`) or a comma-separated list."""
    if raw is None:
        return None
    if raw.lstrip().startswith("["):
        try:
            return _stop_tuple(json.loads(raw))
        except (json.JSONDecodeError, ParamError):
            raise ParamError("stop must be a JSON list of strings", "MISTRAL_STOP") from None
    return tuple(part for part in (p.strip() for p in raw.split(",")) if part) or None


def _stop_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ParamError("stop must be a string or a list of strings", "MISTRAL_STOP")


_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "temperature": (int, float),
    "top_p": (int, float),
    "max_tokens": (int,),
    "random_seed": (int,),
    "safe_prompt": (bool,),
    "json_answers": (bool,),
    "prefix": (str,),
    "stop": (tuple,),
}


def _check_types(values: dict[str, Any]) -> None:
    for name, value in values.items():
        expected = _TYPES[name]
        # bool is an int subclass; a `true` temperature is a mistake, not 1.0
        if isinstance(value, bool) and bool not in expected:
            raise ParamError(f"{name} must be a {expected[0].__name__}")
        if not isinstance(value, expected):
            raise ParamError(f"{name} must be a {expected[0].__name__}")


def request_body(
    params: ModelParams, messages: list[dict[str, Any]], *, prompt_cache_key: str | None = None
) -> dict[str, Any]:
    """A streaming chat-completions body carrying only fields Mistral's API accepts (others are a 422).

    `prompt_cache_key` (a conversation's id) lets Mistral's prompt cache serve the history a thread's requests
    share, at a tenth of the input price.
    """
    body: dict[str, Any] = {"model": params.model, "messages": messages, "stream": True}
    optional = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "stop": list(params.stop) if params.stop else None,
        "random_seed": params.random_seed,  # Mistral's name; `seed` is refused
        "safe_prompt": params.safe_prompt,
        "response_format": {"type": "json_object"} if params.json_answers else None,
        "prompt_cache_key": prompt_cache_key or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
