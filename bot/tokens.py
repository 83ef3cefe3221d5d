"""Token counting with mistral-common's bundled Tekken tokenizer, or an honest estimate until it loads.

The tokenizer takes about a second to load, so it is loaded in a worker thread at start-up; until then the
estimate errs on the side of more tokens, which only trims history a little earlier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def estimate_tokens(text: str) -> int:
    # Tekken averages about 4 bytes a token on English and code; 3 leaves a margin for other scripts.
    return len(text.encode("utf-8")) // 3 + 1


class TokenCounter:
    def __init__(self) -> None:
        self._encode: Callable[[str], list[int]] | None = None

    @property
    def exact(self) -> bool:
        return self._encode is not None

    def load(self) -> None:
        """Blocking: load the tokenizer (call it through `asyncio.to_thread`)."""
        try:
            from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

            tokenizer = MistralTokenizer.v3(is_tekken=True).instruct_tokenizer.tokenizer
        except Exception:  # an optional accuracy gain: the estimate still works
            log.warning("could not load the Mistral tokenizer; estimating token counts", exc_info=True)
            return
        self._encode = lambda text: tokenizer.encode(text, bos=False, eos=False)

    def count(self, text: str) -> int:
        if self._encode is None:
            return estimate_tokens(text)
        return len(self._encode(text))
