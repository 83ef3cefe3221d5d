"""JSON on the hot paths (each model event read, each Web API and model request written), through orjson.

An answer reads about a hundred model events and writes a handful of request bodies: with the standard
library's `json` that was about a tenth of the bot's instructions per answer (BENCHMARKS.md, issue 9). orjson
does the same in a third of the time. What orjson refuses and the standard library takes (a lone surrogate
escape, an integer beyond 64 bits, a key that is not a string) goes through `json`, so a result differs from
`json.loads` or `json.dumps` only in spacing (and NaN, which is no JSON, is written `null`), and an error is
`json`'s own.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> str:
    """Compact JSON text: no spaces after separators, and non-ASCII characters as themselves (UTF-8)."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
