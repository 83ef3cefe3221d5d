"""An assistant `prefix` is shown exactly once, whether or not the model echoes it at the start."""

from __future__ import annotations


class PrefixedAnswer:
    """Feed streamed text; `feed` returns what to show. The answer always starts with the prefix once."""

    def __init__(self, prefix: str | None) -> None:
        self._prefix = prefix or ""
        self._pending = ""
        self._decided = not self._prefix

    def feed(self, text: str) -> str:
        if self._decided:
            return text
        self._pending += text
        if len(self._pending) < len(self._prefix) and self._prefix.startswith(self._pending):
            return ""  # could still be the echo: wait for more
        self._decided = True
        pending, self._pending = self._pending, ""
        if pending.startswith(self._prefix):
            return pending  # echoed: show it as it came
        return self._prefix + pending

    def flush(self) -> str:
        """At the end of the stream: whatever was held back, with the prefix."""
        if self._decided:
            return ""
        # Undecided means all that came is the start of the prefix: a partial echo.
        self._decided = True
        self._pending = ""
        return self._prefix
