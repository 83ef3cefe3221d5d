"""What an answer costs: a price table per model, and the cost of the tokens the API reported.

Mistral's list prices are built in; `MODEL_PRICES` overrides or extends them (a self-hosted model at zero, a
negotiated rate, a new model). Prices are per million tokens, in `CURRENCY`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

CURRENCY = "USD"

# Cached prompt tokens are billed at this share of the input price (Mistral's prompt caching).
CACHED_INPUT_SHARE = 0.1


@dataclass(frozen=True)
class Price:
    input: float  # per million prompt tokens
    output: float  # per million completion tokens


# Mistral's list prices as read in 2026-08 (USD per million tokens, input / output). Prices move: MODEL_PRICES
# overrides any of them without a release.
DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "mistral-large-latest": Price(0.50, 1.50),
        "mistral-medium-latest": Price(1.50, 7.50),
        "mistral-small-latest": Price(0.15, 0.60),
    }
)

_SHORT_ENTRY = re.compile(r"^\s*([^=\s]+)\s*=\s*([^/\s]+)\s*/\s*([^/\s]+)\s*$")
# A dated release ("-2512", "-2407") or the moving alias: what is left is the model's family.
_VERSION = re.compile(r"-(?:latest|\d{4})$")


def parse_prices(raw: str) -> dict[str, Price]:
    """Read MODEL_PRICES: JSON (`{"m": {"input": 0.5, "output": 1.5}}` or `{"m": [0.5, 1.5]}`) or `m=0.5/1.5,o=0/0`.

    Raises ValueError with one line naming the bad entry.
    """
    text = raw.strip()
    if not text:
        return {}
    if text.startswith(("{", "[")):
        return _parse_json(text)
    prices: dict[str, Price] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue  # a trailing comma
        match = _SHORT_ENTRY.match(entry)
        if match is None:
            raise ValueError(f"bad entry {entry.strip()!r}: expected model=input/output, e.g. my-model=0.5/1.5")
        model, inp, out = match.groups()
        prices[model] = _price(model, _number(model, inp), _number(model, out))
    return prices


def _parse_json(text: str) -> dict[str, Price]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object of model → price")
    prices: dict[str, Price] = {}
    for model, value in data.items():
        if isinstance(value, dict) and set(value) == {"input", "output"}:
            inp, out = value["input"], value["output"]
        elif isinstance(value, list) and len(value) == 2:
            inp, out = value
        else:
            raise ValueError(f'bad entry {model!r}: expected {{"input": …, "output": …}} or [input, output]')
        prices[model] = _price(model, _number(model, inp), _number(model, out))
    return prices


def _number(model: str, value: Any) -> float:
    # bool is an int in Python; `true` as a price is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"bad entry {model!r}: prices must be numbers")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"bad entry {model!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"bad entry {model!r}: prices must be finite numbers")
    return number


def _price(model: str, inp: float, out: float) -> Price:
    if inp < 0 or out < 0:
        raise ValueError(f"bad entry {model!r}: prices cannot be negative")
    return Price(input=inp, output=out)


def price_table(overrides: Mapping[str, Price]) -> dict[str, Price]:
    """The built-in list prices, with the deployment's overrides on top."""
    return {**DEFAULT_PRICES, **overrides}


def family(model: str) -> str:
    """The model's family: both "mistral-large-2512" and "mistral-large-latest" → "mistral-large"."""
    return _VERSION.sub("", model.strip().lower())


def price_for(model: str, table: Mapping[str, Price]) -> Price | None:
    """The model's price: its exact name, else its family's (the `-latest` alias first); None when unknown.

    The API reports the dated model that served an alias ("mistral-large-2512" for "mistral-large-latest"),
    so an answer is priced by its family when its exact version is not listed.
    """
    if model in table:
        return table[model]
    wanted = family(model)
    if not wanted:
        return None
    same = sorted(name for name in table if family(name) == wanted)
    if not same:
        return None
    latest = [name for name in same if name.lower().endswith("-latest")]
    return table[(latest or same)[0]]


def cost(price: Price | None, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> float:
    """What the tokens cost: cached prompt tokens at a tenth of the input price; 0.0 for an unpriced model."""
    if price is None:
        return 0.0
    cached = min(max(cached_tokens, 0), max(prompt_tokens, 0))  # a report of more cached than prompt: all cached
    fresh = max(prompt_tokens, 0) - cached
    total = fresh * price.input + cached * price.input * CACHED_INPUT_SHARE + max(completion_tokens, 0) * price.output
    return total / 1_000_000


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(amount: float, currency: str = CURRENCY) -> str:
    """$12.34 from ten cents up, $0.0123 below, so a person's few answers do not all read as $0.01."""
    if amount == 0:
        digits = f"{0:.2f}"
    elif abs(amount) < 0.0001:
        digits = "<0.0001"
    elif abs(amount) < 0.1:
        digits = f"{amount:.4f}"
    else:
        digits = f"{amount:,.2f}"
    symbol = _SYMBOLS.get(currency.upper())
    if symbol is None:
        return f"{digits} {currency}"
    if digits.startswith("<"):
        return f"<{symbol}{digits[1:]}"
    return f"{symbol}{digits}"
