"""What reading a message's files gives: the chunks for the model, and one outcome per file (what reached the
model, what the store keeps for later turns, the note for the person)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bot.files.images import PreparedImage
from bot.files.kinds import FileKind

Chunk = dict[str, Any]
SentAs = Literal["image", "document", "text"]


@dataclass(frozen=True)
class FileOutcome:
    """One shared file: what reached the model, what the store keeps for later turns, and the note."""

    file_id: str
    name: str
    kind: FileKind
    mimetype: str
    size: int | None  # bytes (Slack's figure, or what was downloaded)
    sent_as: SentAs | None = None  # how its content reached the model; None: not at all
    text: str | None = None  # its decoded or extracted text (up to keep_text_chars), for later turns
    truncated: bool = False  # the text sent was cut to fit the budget
    note: str | None = None  # for the person; None when it was read in full
    chunks: tuple[Chunk, ...] = ()  # exactly what was sent for it (its header text included)
    pages: int | None = None  # PDFs
    image: PreparedImage | None = None  # images: the re-encoded image that was sent

    @property
    def sent(self) -> bool:
        return self.sent_as is not None


@dataclass(frozen=True)
class FilesRead:
    chunks: list[Chunk] = field(default_factory=list)  # to append to the user message's content, in order
    outcomes: list[FileOutcome] = field(default_factory=list)  # one per file, in the event's order

    @property
    def notes(self) -> list[str]:
        return [o.note for o in self.outcomes if o.note]

    def note_text(self) -> str | None:
        """The notes as one short Markdown list for the thread, or None when every file was read in full."""
        found = self.notes
        if not found:
            return None
        return found[0] if len(found) == 1 else "\n".join(f"- {n}" for n in found)

    @property
    def image_tokens(self) -> int:
        """An upper bound on the context tokens the images take (text chunks count as text)."""
        return sum(o.image.tokens for o in self.outcomes if o.image is not None)
