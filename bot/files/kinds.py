"""What a shared file is, and how its text reads: pure decisions on Slack's file objects and on bytes.

A Slack file object (an entry of `event["files"]`) is classified by its MIME type and its extension together:
Slack labels many text files `application/octet-stream` or `text/plain`, and code snippets carry their language
in `filetype`, so neither alone is enough. Text is decoded without trusting any declared charset (Slack gives
none): BOMs first, strict UTF-8, then Windows-1252 and Latin-1, which decode anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FileKind(StrEnum):
    IMAGE = "image"  # sent as an image_url chunk
    TEXT = "text"  # decoded and sent as a text chunk
    PDF = "pdf"  # a document_url chunk, or its extracted text
    OTHER = "other"  # not read: a note says so


@dataclass(frozen=True)
class SlackFile:
    """The fields of a Slack file object this package reads; the rest of the object is ignored."""

    id: str
    name: str
    mimetype: str
    filetype: str
    size: int | None  # bytes, as Slack reports it (None when absent)
    url: str | None  # url_private_download, else url_private
    mode: str  # "hosted", "snippet", "post", "external", "tombstone", "hidden_by_limit", …
    file_access: str | None = None  # "check_file_info": the event carries only the id (call files.info)

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> SlackFile:
        size = obj.get("size")
        url = obj.get("url_private_download") or obj.get("url_private")
        return cls(
            id=str(obj.get("id") or ""),
            # `name` is the file name with its extension; `title` is what the person typed (often without one).
            name=str(obj.get("name") or obj.get("title") or obj.get("id") or "file"),
            mimetype=str(obj.get("mimetype") or "").lower().split(";")[0].strip(),
            filetype=str(obj.get("filetype") or "").lower(),
            size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            url=url if isinstance(url, str) and url else None,
            mode=str(obj.get("mode") or "hosted"),
            file_access=obj.get("file_access") if isinstance(obj.get("file_access"), str) else None,
        )

    @property
    def extension(self) -> str:
        """The lower-case extension without its dot ("" when there is none); a dotfile's name counts as one."""
        base = self.name.rsplit("/", 1)[-1].lower()
        return base.rsplit(".", 1)[-1] if "." in base else ""


# Formats the model takes as images once re-encoded. BMP and TIFF are not in Mistral's list, but Pillow reads
# them and they leave as PNG, so people need not convert them first.
IMAGE_MIMETYPES = frozenset(
    {"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"}
)
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "jpe", "gif", "webp", "bmp", "tif", "tiff"})

TEXT_MIMETYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/x-ndjson",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/csv",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-typescript",
        "application/x-sh",
        "application/x-shellscript",
        "application/sql",
        "application/x-sql",
        "application/x-python",
        "application/x-python-code",
        "application/x-httpd-php",
        "application/x-perl",
        "application/x-ruby",
        "application/graphql",
        "application/x-tex",
        "application/x-subrip",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "image/svg+xml",  # SVG is XML: the model reads its source, as it cannot see it
    }
)
# Extensions (and Slack `filetype`s) of files people paste as text: prose, data, configuration, logs, code.
TEXT_EXTENSIONS = frozenset(
    {
        # prose, data and configuration
        *("txt", "text", "md", "markdown", "mdx", "rst", "adoc", "org", "tex", "log", "out", "err"),
        *("json", "jsonl", "ndjson", "geojson", "ipynb", "csv", "tsv", "yaml", "yml", "xml", "toml"),
        *("ini", "cfg", "conf", "config", "env", "properties", "plist", "svg", "srt", "vtt", "diff", "patch"),
        *("html", "htm", "xhtml", "css", "scss", "sass", "less", "lock", "sum", "mod", "gitignore"),
        # code
        *("py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "tsx", "vue", "svelte", "java", "kt", "kts", "scala"),
        *("groovy", "gradle", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "m", "mm", "cs", "fs", "go", "rs"),
        *("rb", "php", "pl", "pm", "swift", "dart", "lua", "r", "jl", "ex", "exs", "erl", "hrl", "hs", "clj"),
        *("el", "lisp", "scm", "ml", "elm", "nim", "zig", "v", "sv", "vhd", "asm", "s", "sol", "proto"),
        *("graphql", "gql", "sql", "sh", "bash", "zsh", "fish", "ps1", "psm1", "bat", "cmd", "awk", "sed"),
        *("tf", "tfvars", "hcl", "nix", "cmake", "mk", "make", "dockerfile", "containerfile", "vim"),
        # Slack's own filetype names for snippets and posts, where they differ from an extension
        *("plain", "python", "javascript", "typescript", "shell", "markdown", "csharp", "kotlin", "ruby", "rust"),
        *("golang", "objc", "perl", "powershell", "haskell", "clojure", "erlang", "elixir", "ocaml", "fsharp"),
        *("verilog", "vb", "vbscript", "coffeescript", "smalltalk", "puppet", "apex", "cypher"),
    }
)
# Files with no extension that are text by name.
TEXT_NAMES = frozenset(
    {"dockerfile", "containerfile", "makefile", "gemfile", "rakefile", "procfile", "vagrantfile", "jenkinsfile"}
    | {"readme", "license", "copying", "changelog", "authors", "notice", "todo", "codeowners"}
)
PDF_MIMETYPES = frozenset({"application/pdf", "application/x-pdf"})
# MIME types that say "some bytes" and nothing more: the extension decides.
GENERIC_MIMETYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})


def classify(file: SlackFile) -> FileKind:
    """Image, text-like, PDF or other, by MIME type and extension (a specific MIME type wins)."""
    mime, ext, filetype = file.mimetype, file.extension, file.filetype
    if mime in IMAGE_MIMETYPES:
        return FileKind.IMAGE
    if mime in PDF_MIMETYPES:
        return FileKind.PDF
    if mime.startswith("text/") or mime in TEXT_MIMETYPES or mime.endswith(("+json", "+xml")):
        return FileKind.TEXT
    if mime in GENERIC_MIMETYPES or mime.startswith("application/x-"):
        # A generic type, or a vendor type Slack made up: the extension, then Slack's filetype, decide.
        for hint in (ext, filetype):
            if hint in IMAGE_EXTENSIONS:
                return FileKind.IMAGE
            if hint == "pdf":
                return FileKind.PDF
            if hint in TEXT_EXTENSIONS:
                return FileKind.TEXT
        if not ext and file.name.lower() in TEXT_NAMES:
            return FileKind.TEXT
    return FileKind.OTHER


_OTHER_LABELS: Sequence[tuple[tuple[str, ...], tuple[str, ...], str]] = (
    # (MIME prefixes, extensions, what it is)
    (("image/heic", "image/heif"), ("heic", "heif"), "an HEIC photo, which I can't open (share it as JPEG or PNG)"),
    (("image/",), ("psd", "ai", "eps", "raw", "cr2", "nef", "dng", "ico"), "an image format I can't open"),
    (("video/",), ("mp4", "mov", "avi", "mkv", "webm", "m4v", "wmv"), "a video, which I can't watch"),
    (("audio/",), ("mp3", "wav", "m4a", "ogg", "flac", "aac", "opus"), "an audio file, which I can't listen to"),
    (
        ("application/zip", "application/x-7z", "application/x-rar", "application/gzip", "application/x-tar"),
        ("zip", "7z", "rar", "gz", "tgz", "tar", "bz2", "xz", "zst", "jar", "war", "apk", "dmg", "iso"),
        "an archive, which I can't unpack",
    ),
    (
        (
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml",
            "application/vnd.oasis.opendocument.text",
            "application/rtf",
        ),
        ("doc", "docx", "odt", "rtf", "pages"),
        "a word-processor document, which I can't read (share it as PDF, or paste its text)",
    ),
    (
        (
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml",
            "application/vnd.oasis.opendocument.spreadsheet",
        ),
        ("xls", "xlsx", "ods", "numbers"),
        "a spreadsheet, which I can't read (share it as CSV or PDF)",
    ),
    (
        (
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml",
            "application/vnd.oasis.opendocument.presentation",
        ),
        ("ppt", "pptx", "odp", "key"),
        "a presentation, which I can't read (share it as PDF)",
    ),
    (("application/vnd.slack-docs",), ("quip", "canvas"), "a Slack canvas, which I can't read"),
)


def describe_other(file: SlackFile) -> str:
    """Why a file of kind OTHER is not read, as the end of "I skipped `x`: it is …"."""
    for mimes, extensions, label in _OTHER_LABELS:
        if file.mimetype.startswith(mimes) or file.extension in extensions:
            return label
    return "a type of file I can't read"


# --- text -------------------------------------------------------------------------------------------------------

_BOMS: Sequence[tuple[bytes, str]] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# C0 controls other than tab, newline, form feed and carriage return (and ESC, which colored logs are full of)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_BINARY_SHARE = 0.02  # more control characters than this (after decoding) and it is not text


def decode_text(data: bytes) -> str | None:
    """The text of `data`, or None when it is not text (an executable, an image with a .txt name…).

    BOM (UTF-8, UTF-16, UTF-32), then UTF-16 without a BOM when its zero bytes say so, then strict UTF-8, then
    Windows-1252 (what Windows editors write), then Latin-1, which decodes any byte. Line ends become "\\n".
    """
    text = _decode(data)
    if text is None:
        return None
    if text and len(_CONTROL.findall(text)) > len(text) * _BINARY_SHARE:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes) -> str | None:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                return data.decode(codec, errors="replace")  # a BOM is a clear statement; keep what reads
    if b"\x00" in data:
        # Zero bytes: UTF-16 without a BOM (before UTF-8, which would take them as NUL characters), else binary.
        return _utf16_without_bom(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start]
        if exc.reason == "unexpected end of data" and not head.isascii():
            # UTF-8 up to a last character cut in half (a file truncated mid-character): UTF-8 it is.
            return head.decode("utf-8") + "\ufffd"
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text with no BOM: mostly ASCII, so one byte of each pair is zero, always on the same side."""
    if len(data) < 4 or len(data) % 2:
        return None
    sample = data[:4096]
    even_zeros, odd_zeros = sample[0::2].count(0), sample[1::2].count(0)
    pairs = len(sample) // 2
    for zeros, other, codec in ((odd_zeros, even_zeros, "utf-16-le"), (even_zeros, odd_zeros, "utf-16-be")):
        if zeros > pairs * 0.6 and other == 0:
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                return None
    return None


@dataclass(frozen=True)
class Trimmed:
    text: str
    cut: bool  # some of the text was left out
    kept: int  # characters kept (of the original)
    total: int  # characters in all


def trim_text(text: str, limit: int, *, keep_tail: bool = False) -> Trimmed:
    """At most `limit` characters of `text`, cut at a line end when one is near.

    `keep_tail`: keep the beginning and the end (a fifth and four fifths), for logs, whose error is at the end;
    the cut is marked in the middle with how much was left out (the marker counts in `limit`).
    """
    total = len(text)
    if total <= limit:
        return Trimmed(text, False, total, total)
    if limit <= 0:
        return Trimmed("", True, 0, total)
    if not keep_tail or limit < 2 * len(_gap_marker(total)):
        head = _cut_head(text, limit)
        return Trimmed(head, True, len(head), total)
    room = limit - len(_gap_marker(total))  # the real marker is no longer: it states fewer characters
    head = _cut_head(text, room // 5)
    tail = _cut_tail(text, room - len(head))
    marker = _gap_marker(total - len(head) - len(tail))
    return Trimmed(head.rstrip("\n") + marker + tail.lstrip("\n"), True, len(head) + len(tail), total)


def _gap_marker(missing: int) -> str:
    return f"\n[… {missing:,} characters left out here …]\n"


def _cut_head(text: str, limit: int) -> str:
    """The first `limit` characters, ending at a line end when one lies in the last fifth of them."""
    head = text[:limit]
    line_end = head.rfind("\n")
    return head[: line_end + 1] if line_end >= limit * 0.8 else head


def _cut_tail(text: str, limit: int) -> str:
    """The last `limit` characters, starting at a line start when one lies in their first fifth."""
    if limit <= 0:
        return ""
    tail = text[-limit:]
    line_start = tail.find("\n")
    return tail[line_start + 1 :] if 0 <= line_start <= limit * 0.2 else tail


def keeps_tail(file: SlackFile) -> bool:
    """Logs are read from both ends when cut: what went wrong is usually at the end."""
    return file.extension in ("log", "out", "err") or file.mimetype in ("text/x-log", "text/log")


def share_budget(sizes: Sequence[int], budget: int) -> list[int]:
    """Split `budget` among items wanting `sizes`: small ones get all they want, large ones share the rest evenly.

    (Max-min fairness: a short config file is never cut because a long log came in the same message.)
    """
    shares = [0] * len(sizes)
    remaining = max(budget, 0)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for position, i in enumerate(order):
        fair = remaining // (len(order) - position)
        shares[i] = min(max(sizes[i], 0), fair)
        remaining -= shares[i]
    return shares


def fence_for(text: str) -> str:
    """A Markdown code fence longer than any run of backticks in `text`, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
