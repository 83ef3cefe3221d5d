from __future__ import annotations

import pytest

from bot.core.access import (
    CHANNEL_NOT_ALLOWED_NOTE,
    DM_NOT_ALLOWED_NOTE,
    USER_NOT_ALLOWED_NOTE,
    Access,
    parse_ids,
)

EVERYONE = Access()
ENG = Access(channels=frozenset({"C0ENG"}))
ENG_AND_DMS = Access(channels=frozenset({"C0ENG", "DM"}))
ADA = Access(users=frozenset({"U0ADA"}))
ADA_IN_ENG = Access(channels=frozenset({"C0ENG", "dm"}), users=frozenset({"U0ADA"}))


@pytest.mark.parametrize(
    "access,channel,user,allowed,note",
    [
        (EVERYONE, "C0ENG", "U0ADA", True, None),
        (EVERYONE, "D0ADA", "U0ADA", True, None),
        (EVERYONE, "G0PRIVATE", "U0BOB", True, None),
        (ENG, "C0ENG", "U0BOB", True, None),
        (ENG, "C0SALES", "U0BOB", False, CHANNEL_NOT_ALLOWED_NOTE),
        (ENG, "G0PRIVATE", "U0BOB", False, CHANNEL_NOT_ALLOWED_NOTE),  # private channels and group DMs: listed
        (ENG, "D0BOB", "U0BOB", False, DM_NOT_ALLOWED_NOTE),  # limiting channels closes DMs too
        (ENG_AND_DMS, "D0BOB", "U0BOB", True, None),  # unless `dm` is listed (any case)
        (ENG_AND_DMS, "C0SALES", "U0BOB", False, CHANNEL_NOT_ALLOWED_NOTE),
        (ADA, "C0SALES", "U0ADA", True, None),
        (ADA, "D0ADA", "U0ADA", True, None),
        (ADA, "C0SALES", "U0BOB", False, USER_NOT_ALLOWED_NOTE),
        (ADA, "D0BOB", "U0BOB", False, USER_NOT_ALLOWED_NOTE),
        (ADA_IN_ENG, "C0ENG", "U0ADA", True, None),
        (ADA_IN_ENG, "D0ADA", "U0ADA", True, None),
        (ADA_IN_ENG, "C0SALES", "U0ADA", False, CHANNEL_NOT_ALLOWED_NOTE),
        (ADA_IN_ENG, "C0SALES", "U0BOB", False, USER_NOT_ALLOWED_NOTE),  # both refused: the person is named
        (ADA_IN_ENG, "C0ENG", "U0BOB", False, USER_NOT_ALLOWED_NOTE),
    ],
)
def test_access(access: Access, channel: str, user: str, allowed: bool, note: str | None) -> None:
    assert access.allows(channel, user) is allowed
    assert access.note(channel, user) == note


def test_dm_is_a_word_not_a_channel_prefix() -> None:
    # A channel id that happens to be "DM…" is not the word.
    assert not Access(channels=frozenset({"DM0X"})).channel_allowed("D0ADA")


@pytest.mark.parametrize(
    "raw,ids",
    [
        ("", frozenset()),
        ("  ", frozenset()),
        ("C1", frozenset({"C1"})),
        ("C1,C2", frozenset({"C1", "C2"})),
        (" C1 , C2,, dm ", frozenset({"C1", "C2", "dm"})),
        ("C1 C2", frozenset({"C1", "C2"})),
    ],
)
def test_parse_ids(raw: str, ids: frozenset[str]) -> None:
    assert parse_ids(raw) == ids


def test_notes_are_short_and_say_whom_to_ask() -> None:
    for note in (CHANNEL_NOT_ALLOWED_NOTE, DM_NOT_ALLOWED_NOTE, USER_NOT_ALLOWED_NOTE):
        assert len(note) < 120 and "admin" in note
