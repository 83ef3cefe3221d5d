"""Who may talk to the bot, and where: ALLOWED_CHANNELS and ALLOWED_USERS (Slack IDs; empty means everyone).

ALLOWED_CHANNELS restricts conversations in channels, DMs included: a DM (channel id starting with "D") is
allowed when ALLOWED_CHANNELS is empty or lists the word `dm`. So an admin who limits the bot to a few channels
to cap cost does not leave DMs open to everyone by accident. Group DMs and private channels have ordinary
channel ids and must be listed like any channel. ALLOWED_USERS applies everywhere, DMs included.
"""

from __future__ import annotations

from dataclasses import dataclass

DM_WORD = "dm"

CHANNEL_NOT_ALLOWED_NOTE = (
    "I'm not enabled in this channel, so I won't answer here. Ask an admin to add it to ALLOWED_CHANNELS."
)
DM_NOT_ALLOWED_NOTE = "I'm not enabled in direct messages. Ask an admin to add `dm` to ALLOWED_CHANNELS."
USER_NOT_ALLOWED_NOTE = "I'm not enabled for you yet. Ask an admin to add you to ALLOWED_USERS."
# The person is the likelier reason to name when both fail: a channel of their own would not help them.
NOT_ALLOWED_NOTE = USER_NOT_ALLOWED_NOTE


def is_dm(channel_id: str) -> bool:
    return channel_id.startswith("D")


def parse_ids(raw: str) -> frozenset[str]:
    """A comma- or space-separated list of IDs (ALLOWED_CHANNELS, ALLOWED_USERS); empty: everyone."""
    return frozenset(part for part in raw.replace(",", " ").split() if part)


@dataclass(frozen=True)
class Access:
    channels: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    @property
    def dms(self) -> bool:
        return not self.channels or any(c.lower() == DM_WORD for c in self.channels)

    def channel_allowed(self, channel_id: str) -> bool:
        if is_dm(channel_id):
            return self.dms
        return not self.channels or channel_id in self.channels

    def user_allowed(self, user_id: str) -> bool:
        return not self.users or user_id in self.users

    def allows(self, channel_id: str, user_id: str) -> bool:
        return self.channel_allowed(channel_id) and self.user_allowed(user_id)

    def note(self, channel_id: str, user_id: str) -> str | None:
        """The private note for a refused mention (sent once), None when the bot may answer."""
        if not self.user_allowed(user_id):
            return USER_NOT_ALLOWED_NOTE
        if not self.channel_allowed(channel_id):
            return DM_NOT_ALLOWED_NOTE if is_dm(channel_id) else CHANNEL_NOT_ALLOWED_NOTE
        return None
