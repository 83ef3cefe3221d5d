"""A store on a file of its own per test, so other connections can check what was committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import SQLiteStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SQLiteStore]:
    # Always closed: aiosqlite's worker thread would otherwise keep the test process alive.
    opened = await SQLiteStore.open(str(path))
    yield opened
    await opened.close()
