"""Token counting: a free upper bound for most prompts, mistral-common's Tekken tokenizer for the rest.

Tekken costs about 140 MB and two seconds of CPU to load, and counting a long thread takes a while, so:
- every prompt is first counted in UTF-8 bytes, which is never less than Tekken's count (a token stands for
  at least one byte). A prompt that fits by bytes fits; nothing more is counted, nothing is loaded.
- only a prompt that may not fit is counted exactly, in a worker thread, with Tekken loaded (once, also in a
  worker thread) on that first need. The exact counts of its messages are returned for the store to keep,
  so each message is counted once in its thread's life.

A bytes/3 estimate is no bound: Tekken spends a token per hex digit or emoji byte, three times that estimate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from bot.core.prompt import Assembly, Draft, fit_prompt

log = logging.getLogger(__name__)


class Counter(Protocol):
    """Counts the tokens of a text; `exact` counts are Tekken's, others an upper bound."""

    @property
    def exact(self) -> bool: ...

    def count(self, text: str) -> int: ...


class ByteBound:
    """UTF-8 bytes: never fewer than Tekken's tokens, about four times as many in English."""

    exact = False

    def count(self, text: str) -> int:
        return len(text.encode("utf-8"))


class Tekken:
    """mistral-common's bundled Tekken tokenizer. Blocking to create (about 2 s): use a worker thread."""

    exact = True

    def __init__(self) -> None:
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        self._tokenizer = MistralTokenizer.v3(is_tekken=True).instruct_tokenizer.tokenizer

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, bos=False, eos=False))


class TokenCounter:
    """Fits prompts to their budget, loading the exact counter (`load_exact`) only when one may not fit."""

    def __init__(self, load_exact: Callable[[], Counter] = Tekken) -> None:
        self.bound = ByteBound()
        self._load_exact = load_exact
        self._exact: Counter | None = None
        self._loading: asyncio.Task[Counter] | None = None

    @property
    def loaded(self) -> bool:
        """Whether the exact counter was needed (and loaded, or found missing)."""
        return self._exact is not None

    async def exact(self) -> Counter:
        """The exact counter, loaded once in a worker thread; the byte bound if it cannot be loaded."""
        if self._exact is None:
            if self._loading is None:
                self._loading = asyncio.create_task(self._load(), name="tokenizer-load")
            # Shielded: a turn cancelled meanwhile leaves the load to finish for the next one.
            self._exact = await asyncio.shield(self._loading)
        return self._exact

    async def _load(self) -> Counter:
        try:
            counter = await asyncio.to_thread(self._load_exact)
        except Exception:  # mistral-common is a dependency, so this is a broken install: keep answering
            log.warning("could not load the Mistral tokenizer; trimming by byte counts", exc_info=True)
            return self.bound
        log.info("loaded the Mistral tokenizer for a prompt near its context budget")
        return counter

    async def fit(self, draft: Draft) -> Assembly:
        """`draft` trimmed to its budget: by bytes when that cuts nothing, else by exact counts (off the loop).

        `Assembly.counted` holds the exact counts made here, for the store to keep.
        """
        quick = fit_prompt(draft=draft, count_tokens=self.bound.count, exact=False)
        if not quick.prompt.trimmed:
            return quick  # it fits even counted in bytes, so it fits
        counter = await self.exact()
        if not counter.exact:
            return quick
        return await asyncio.to_thread(fit_prompt, draft=draft, count_tokens=counter.count, exact=True)
