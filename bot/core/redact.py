"""`REDACT`: what is withheld from people's text before the model or the store sees it. Pure: no I/O.

The setting is a comma-separated list. Four items are kinds the bot knows (case does not matter):

- `secret`: API keys and tokens (Slack, OpenAI-style `sk-`, Stripe, AWS access key ids, GitHub, Google, JWTs,
  Slack webhook URLs, `Bearer` values, PEM private key blocks) and the value of `password=`/`api_key: ` style
  assignments (the name stays, so the text still reads);
- `card`: 13–19 digits, spaces or dashes allowed between them, that pass the Luhn check;
- `email`: addresses, and Slack's `<mailto:…|…>` links whole;
- `phone`: international (+33 6 12 34 56 78, +14155550132) and common national formats ((415) 555-0132,
  415-555-0132, 06 12 34 56 78, 0612345678) of 9–15 digits, and Slack's `<tel:…|…>` links whole. A bare run of
  digits without `+` or a leading 0 is not a phone (it reads as an ID or a timestamp, like 4155550132); dates,
  times, version numbers, IP addresses, decimals, Slack timestamps and 1 234 567-style thousands are not either.

Any other item is a regular expression, withheld as `[withheld]`. Surrounding spaces are trimmed. Items are
split at commas outside brackets, braces and parentheses, so `[0-9]{4,}` or `(a,b)` need nothing; any other
comma in an expression is written `\\,` (`Doe\\, Jane`). An item of letters alone that is not a kind
(`emails`, `credit_card`) is refused as a likely typo: a privacy setting that silently does nothing is worse
than a refused start; write a word to withhold as a regular expression (`\\bacme\\b`).

Kinds apply in a fixed order, each to the text the one before left: secrets, the custom expressions, cards,
emails, phones. Secrets come first so that no other pattern can cut a token in two and leave half of it; a
card comes before phones so that the phone pattern cannot take half of a card. Numbers inside a URL (IDs in
paths) are neither cards nor phones, but secrets and addresses in one are withheld. Slack's markup (`<@U1>`,
`<#C1|general>`, `<https://…|label>`) never matches, so it survives.

The built-in patterns are written to run in linear time on any input (bounded repeats, possessive groups,
look-behinds that keep a match from starting inside a word or a number); a custom expression is the
administrator's to keep cheap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

KINDS = ("secret", "card", "email", "phone")  # the reserved names, in the order they apply (custom: after secret)
PLACEHOLDERS = {
    "secret": "[secret withheld]",
    "card": "[card withheld]",
    "email": "[email withheld]",
    "phone": "[phone withheld]",
    "pattern": "[withheld]",
}
# How the note names each kind: singular, plural.
NOUNS = {
    "email": ("email address", "email addresses"),
    "phone": ("phone number", "phone numbers"),
    "card": ("card number", "card numbers"),
    "secret": ("key or password", "keys or passwords"),
    "pattern": ("other private detail", "other private details"),
}

# Numbers in a link are IDs far more often than cards or phones: a URL is skipped by those two patterns.
_URL = r"(?P<url>\b(?:https?|ftp)://[^\s<>|]*+)"

_SECRET = re.compile(
    r"""
    (?P<pem>(?s:-----BEGIN[A-Z0-9 ]{0,40}PRIVATE\ KEY(?:\ BLOCK)?-----
        # A key without its end (cut off, or pasted in part) is withheld to the end of the text.
        (?:.*?-----END[A-Z0-9 ]{0,40}PRIVATE\ KEY(?:\ BLOCK)?-----|.*)))
    | (?P<key>
        (?:(?<![A-Za-z0-9])|(?<=[a-z])(?=[A-Z]))  # a name's start, or a camelCase word's (apiKey)
        (?i:(?P<pw>pass(?:word|wd|phrase)?|pwd)
            |(?:client[_-]?)?secret|(?:auth[_-]?|access[_-]?|refresh[_-]?)?token
            |api[_-]?key|access[_-]?key|private[_-]?key|credentials?)
        s?["']?[\ \t]*[:=][\ \t]*)
      (?P<q>["'])?
      (?P<value>(?!\[)(?(q)[^"'\n]++|[^\s"'`,;<>|)\]}]++))
    | (?P<bearer>(?<![A-Za-z0-9])[Bb]earer[\ \t]+)(?P<credential>[A-Za-z0-9._~+/-]{16,}+=*)
    | (?<![A-Za-z0-9_-])
      (?:xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{6,}+  # Slack: xoxb-, xoxp-, xoxe.xoxp-…
        |xapp-[0-9]+-[A-Za-z0-9-]{6,}+
        |sk-[A-Za-z0-9_-]{20,}+  # OpenAI-style (sk-proj-…), Anthropic (sk-ant-…)
        |[rs]k_(?:live|test)_[A-Za-z0-9]{16,}+  # Stripe
        |(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])  # AWS access key ids
        |gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{20,}+
        |AIza[0-9A-Za-z_-]{35}
        |eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]*+  # JWT: header.payload.signature
        |hooks\.slack\.com/(?:services|workflows|triggers|actions|commands)/[A-Za-z0-9/_-]++)
    """,
    re.VERBOSE,
)

_CARD = re.compile(
    _URL + r"|(?P<hit>(?<!\w)(?<![0-9][.,])[0-9](?:[ -]?[0-9]){12,18}(?!\w)(?![.,][0-9]))",
)

_EMAIL = re.compile(
    r"(?P<mailto><mailto:[^|>\s]{1,320}+(?:\|[^>]{0,320}+)?>)"
    r"|(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])",
)

_PHONE = re.compile(
    r"""
    (?P<tel><tel:[^|>\s]{1,64}+(?:\|[^>]{0,64}+)?>)
    | """
    + _URL
    + r"""
    | (?P<hit>
        (?<![\w+])(?<![0-9][.,:/-])  # not inside a word, nor the rest of a number, time, date or path
        (?:\+[0-9]{7,15}+  # E.164 without separators
          |0[1-9][0-9]{8,9}+  # a national number with its leading 0, without separators
          |(?:\+[0-9]{1,3}+[\ .-]?)?+(?:\([0-9]{1,5}\)[\ .-]?)?+[0-9]{1,8}+(?:[\ .-][0-9]{1,8}+){0,6}+)
        (?![\w+])(?![.,:/-]?[0-9]))
    """,
    re.VERBOSE,
)

_DATE = re.compile(r"[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}(?![0-9])|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{4}(?![0-9])")
_GROUPS = re.compile(r"[0-9]+")
# Secret names whose value is withheld whatever it is; for the others (token, key…), see `_secret`.
_SHORTEST_KEY_VALUE = 8
_SHOWN_CHARS = 40  # of a bad item, in the error


def _secret(m: re.Match[str]) -> str | None:
    if m["bearer"] is not None:
        return m["bearer"] + PLACEHOLDERS["secret"]
    if m["key"] is None:
        return PLACEHOLDERS["secret"]
    value = m["value"]
    # `max_tokens: 1024` or `token: expired` name no secret: past a password, a value must look like one.
    if m["pw"] is None and (len(value) < _SHORTEST_KEY_VALUE or value.isdigit()):
        return None
    return m["key"] + (m["q"] or "") + PLACEHOLDERS["secret"]


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _card(m: re.Match[str]) -> str | None:
    if m["url"] is not None:
        return None
    return PLACEHOLDERS["card"] if _luhn(m["hit"].replace(" ", "").replace("-", "")) else None


def _email(m: re.Match[str]) -> str | None:
    return PLACEHOLDERS["email"]


def _phone(m: re.Match[str]) -> str | None:
    if m["url"] is not None:
        return None
    if m["tel"] is not None:
        return PLACEHOLDERS["phone"]
    hit = m["hit"]
    groups = _GROUPS.findall(hit)
    digits = sum(map(len, groups))
    if not 9 <= digits <= 15 or _DATE.match(hit):
        return None
    # One digit alone is a phone's trunk or country code at its start; further in, it is an ISBN or a list.
    if any(len(g) == 1 for g in groups[2 if hit.startswith("+") else 1 :]):
        return None
    if "." in hit and (min(map(len, groups)) < 2 or (len(groups) == 4 and max(map(len, groups)) <= 3)):
        return None  # a version number, a decimal, an IP address
    if hit[0].isdigit() and len(groups) >= 4 and len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        return None  # thousands: 1 234 567 890
    return PLACEHOLDERS["phone"]


# Cheap tests (substring searches in C) that let most text skip a kind's full scan, a few hundred µs per kB:
# each must be true of every text the kind's pattern can withhold anything from.
_SECRET_HINTS = (
    *("-----begin", "pass", "pwd", "secret", "token", "key", "credential", "bearer"),
    *("xox", "xapp", "sk-", "k_live_", "k_test_", "akia", "asia", "aiza", "eyj", "hooks.slack.com"),
    *("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
)


def _digits(text: str) -> int:
    return sum(map(text.count, "0123456789"))


def _may_hold_secret(text: str) -> bool:
    low = text.lower()
    return any(hint in low for hint in _SECRET_HINTS)


Replacer = Callable[[re.Match[str]], str | None]
_BUILT_IN: dict[str, tuple[re.Pattern[str], Replacer, Callable[[str], bool]]] = {
    "secret": (_SECRET, _secret, _may_hold_secret),
    "card": (_CARD, _card, lambda text: _digits(text) >= 13),
    "email": (_EMAIL, _email, lambda text: "@" in text),
    "phone": (_PHONE, _phone, lambda text: "<tel:" in text or _digits(text) >= 9),
}


def _split(setting: str) -> list[str]:
    """Items at the commas outside brackets, braces and parentheses (so `[0-9]{2,4}` stays whole); `\\,` is a
    comma inside an item anywhere."""
    items: list[str] = []
    current: list[str] = []
    depth, in_class, i = 0, False, 0
    while i < len(setting):
        ch = setting[i]
        if ch == "\\" and i + 1 < len(setting):
            nxt = setting[i + 1]
            current.append("," if nxt == "," else ch + nxt)  # an escaped comma is a comma to `re` anyway
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch in "({":
            depth += 1
        elif ch in ")}":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            items.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _shown(item: str) -> str:
    return repr(item if len(item) <= _SHOWN_CHARS else item[:_SHOWN_CHARS] + "…")


def _compile(item: str) -> re.Pattern[str]:
    if re.fullmatch(r"[A-Za-z_]+", item):
        raise ValueError(
            f"{_shown(item)} is not one of {', '.join(KINDS)}; to withhold a word, write it as a regular "
            f"expression (\\b{item}\\b)"
        )
    try:
        pattern = re.compile(item)
    except re.error as exc:
        problem = f"{exc.msg} at position {exc.pos}"
        raise ValueError(f"{_shown(item)} is not a valid regular expression ({problem})") from None
    if pattern.search(""):
        raise ValueError(f"{_shown(item)} matches empty text, so it would withhold nothing but scatter placeholders")
    return pattern


@dataclass(frozen=True)
class Redactor:
    """What `REDACT` asks for, compiled once; `redact` is safe to call from any task."""

    kinds: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, setting: str | None) -> Redactor:
        """Raises ValueError, with one line naming the bad item, for an item that is neither a kind nor a
        usable regular expression."""
        kinds: set[str] = set()
        patterns: list[str] = []
        for item in _split(setting or ""):
            if item.lower() in KINDS:
                kinds.add(item.lower())
            else:
                patterns.append(item)
        return cls(frozenset(kinds), tuple(patterns), tuple(_compile(p) for p in patterns))

    @property
    def active(self) -> bool:
        return bool(self.kinds or self.patterns)

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """`text` with what it withholds replaced by placeholders, and how many of each kind it replaced."""
        counts: Counter[str] = Counter()
        if not self.active or not text:
            return text, counts
        for kind in ("secret", "pattern", "card", "email", "phone"):
            if kind == "pattern":
                for pattern in self._compiled:
                    text = _apply(pattern, _custom, text, counts, kind)
            elif kind in self.kinds:
                pattern, replace, may_hold = _BUILT_IN[kind]
                if may_hold(text):
                    text = _apply(pattern, replace, text, counts, kind)
        return text, counts


def _custom(m: re.Match[str]) -> str | None:
    # An expression that can match nothing somewhere (a bare look-ahead) withholds nothing there.
    return PLACEHOLDERS["pattern"] if m.group(0) else None


def _apply(pattern: re.Pattern[str], replace: Replacer, text: str, counts: Counter[str], kind: str) -> str:
    def one(m: re.Match[str]) -> str:
        replaced = replace(m)
        if replaced is None:
            return m.group(0)
        counts[kind] += 1
        return replaced

    return pattern.sub(one, text)


def withheld_note(counts: Mapping[str, int]) -> str:
    """The note under an answer whose question had things withheld, e.g. "I withheld 2 email addresses and
    1 card number from what I read." Plain text, like bot/notes.py's: the writer sets notes in italics."""
    parts = []
    for kind in ("email", "phone", "card", "secret", "pattern"):
        n = counts.get(kind, 0)
        if n > 0:
            parts.append(f"{n} {NOUNS[kind][n != 1]}")
    if not parts:
        return ""
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"I withheld {listed} from what I read."
