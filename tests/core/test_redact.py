"""REDACT: what each kind withholds and what it must leave alone, custom expressions, errors, counts, the note."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.core.redact import PLACEHOLDERS, Redactor, withheld_note

EVERYTHING = Redactor.parse("secret,card,email,phone")


def withheld(kind: str, text: str) -> tuple[str, Counter[str]]:
    return Redactor.parse(kind).redact(text)


def assert_whole(kind: str, found: str) -> None:
    """`found`, set in a sentence, is replaced whole by the kind's placeholder, and counted once."""
    text, counts = withheld(kind, f"see {found} now")
    assert text == f"see {PLACEHOLDERS[kind]} now"
    assert counts == Counter({kind: 1})


def assert_kept(kind: str, text: str) -> None:
    assert withheld(kind, text) == (text, Counter())


# email ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "found",
    [
        "ada@example.com",
        "first.last+tag@mail.example.co.uk",
        "x_y%z@ex-ample.org",
        "ADA@EXAMPLE.COM",
        "<mailto:ada@example.com|ada@example.com>",  # how Slack sends an address: both parts go
        "<mailto:ada@example.com>",
    ],
)
def test_email_addresses_are_withheld(found: str) -> None:
    assert_whole("email", found)


@pytest.mark.parametrize(
    "text",
    [
        "<@U0ABC123> hello",
        "ping @channel and @here",
        "user@localhost has no domain",
        "a@b is not an address",
        "root@10.0.0.1",
        "<https://example.com|a link>",
        "a @ sign alone",
    ],
)
def test_what_is_no_email_address_stays(text: str) -> None:
    assert_kept("email", text)


def test_an_email_at_the_end_of_a_sentence_keeps_the_full_stop() -> None:
    assert withheld("email", "write to ada@example.com.")[0] == "write to [email withheld]."


# phone ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "found",
    [
        "+33 6 12 34 56 78",
        "(415) 555-0132",
        "(415)555-0132",
        "415-555-0132",
        "415.555.0132",
        "+1 415 555 0132",
        "+1 (415) 555-0132",
        "1 415 555 0132",
        "+14155550132",
        "+33612345678",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "0612345678",
        "07700 900123",
        "+44 20 7946 0958",
        "030 1234567",
        "912 345 678",
        "<tel:+14155550132|+1 415 555 0132>",  # Slack's phone link: both parts go
    ],
)
def test_phone_numbers_are_withheld(found: str) -> None:
    assert_whole("phone", found)


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-01-15",
        "at 2024-01-15T10:30:00Z",
        "on 2024-01-15 10:30",
        "on 2024-01-15 12 people came",
        "on 15/01/2024 or 15.01.2024",
        "at 10:30:00",
        "version 1.2.3, v10.15.7, python 3.11.4 2.31.0 1.26.18",
        "host 192.168.100.200",
        "message 1700000000.000100 in the thread",  # a Slack timestamp
        "since 1700000000",  # a Unix time
        "4155550132",  # a bare run of digits reads as an ID: no + and no leading 0
        "order 123456789012345678901234",
        "ids U0ABC123 C0GENERAL <@U0ABC123> <#C0GENERAL|general>",
        "<https://example.com/orders/415-555-0132|order>",
        "https://example.com/a/0612345678",
        "1 234 567 890 people",
        "pi is 3.14159265358",
        "call 555-0132",  # 7 digits: too few to be anyone's number
        "ISBN 978-3-16-148410-0",
        "$1,234,567.89",
        "0000000000",
        "<!date^1700000000^{date}|Nov 14>",
    ],
)
def test_what_is_no_phone_number_stays(text: str) -> None:
    assert_kept("phone", text)


# card -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "found",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "3400 000000 00009",  # 15 digits: few enough for a phone, but a card comes first
        "6011000990139424",
        "4222222222222",  # 13 digits
    ],
)
def test_card_numbers_are_withheld(found: str) -> None:
    assert_whole("card", found)
    assert EVERYTHING.redact(found) == (PLACEHOLDERS["card"], Counter({"card": 1}))


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # fails the Luhn check
        "1234 5678 9012 3456",
        "message 1700000000.000100",
        "<https://example.com/c/4111111111111111|receipt>",
        "4111111111111111.25",  # a decimal
        "order 41111111111111111111111",  # too long
        "x4111111111111111",  # inside a word
        "411111111111",  # too short
    ],
)
def test_what_is_no_card_number_stays(text: str) -> None:
    assert_kept("card", text)


def test_two_cards_side_by_side_are_two() -> None:
    text, counts = withheld("card", "4111111111111111 4012888888881881")
    assert text == "[card withheld] [card withheld]" and counts == Counter({"card": 2})


# secret ---------------------------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    "found",
    [
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-1234-5678-9012-abcdef",
        "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTA",
        "xoxe-1-My0xLTEyMzQ1Njc4OTA",
        "xapp-1-A0123456789-1234567890123-abcdef0123456789",
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-abcdefghijklmnopqrstuvwxyz012345",
        "sk_live_abcdefghijklmnop1234",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
        JWT,
        PEM,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ],
)
def test_keys_and_tokens_are_withheld(found: str) -> None:
    text, counts = withheld("secret", f"see {found} now")
    assert found not in text and PLACEHOLDERS["secret"] in text and counts == Counter({"secret": 1})
    if not found.startswith("https://"):
        assert text == f"see {PLACEHOLDERS['secret']} now"


def test_a_private_key_without_its_end_is_withheld_to_the_end() -> None:
    text, _ = withheld("secret", "my key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert text == "my key:\n[secret withheld]"


@pytest.mark.parametrize(
    "given,expected",
    [
        ("password=hunter2", "password=[secret withheld]"),
        ("DB_PASSWORD: s3cr3t", "DB_PASSWORD: [secret withheld]"),
        ("pwd = 1234", "pwd = [secret withheld]"),
        ('{"api_key": "abc def 123"}', '{"api_key": "[secret withheld]"}'),
        ("apiKey='abcdef123456'", "apiKey='[secret withheld]'"),
        ("MISTRAL_API_KEY=AbCdEfGh12345678", "MISTRAL_API_KEY=[secret withheld]"),
        ("SLACK_BOT_TOKEN=xoxb-1234-5678-abcdefgh", "SLACK_BOT_TOKEN=[secret withheld]"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = [secret withheld]"),
        ("client_secret: abcdefgh12", "client_secret: [secret withheld]"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [secret withheld]"),
        ("<https://example.com/cb?token=abcdefgh123|link>", "<https://example.com/cb?token=[secret withheld]|link>"),
    ],
)
def test_an_assignment_keeps_its_name_and_withholds_its_value(given: str, expected: str) -> None:
    assert withheld("secret", given) == (expected, Counter({"secret": 1}))


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 1024",
        "tokens: 1500",
        "the token: expired",
        "the password is long",
        "passwords matter",
        "tokenizer: mistral-common",
        "sk-learn and scikit-learn",
        "a skeleton-key",
        "xoxo hugs",
        "AKIA alone",
        "eyJ alone, eyJabc.def",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
        "password: [secret withheld]",  # already withheld: nothing to do again
    ],
)
def test_what_is_no_secret_stays(text: str) -> None:
    assert_kept("secret", text)


# all kinds together ---------------------------------------------------------------------------------------


def test_slack_markup_survives() -> None:
    text = (
        "<@U0ABC123> see <#C0GENERAL|general> and <https://example.com/path?id=4111111111111111|the link> "
        "<!here> <!subteam^S0123|@team> <!date^1700000000^{date}|Nov 14> <https://example.com>"
    )
    assert EVERYTHING.redact(text) == (text, Counter())


def test_counts_per_kind_and_markup_around_them() -> None:
    text, counts = EVERYTHING.redact(
        "<@U0BOB> mail <mailto:ada@example.com|ada@example.com> or bob@example.org, call +33 6 12 34 56 78, "
        "pay with 4111 1111 1111 1111 using key sk-abcdefghijklmnopqrstuvwxyz012345"
    )
    assert text == (
        "<@U0BOB> mail [email withheld] or [email withheld], call [phone withheld], "
        "pay with [card withheld] using key [secret withheld]"
    )
    assert counts == Counter({"email": 2, "phone": 1, "card": 1, "secret": 1})


def test_a_secret_goes_whole_before_any_other_kind_can_cut_it() -> None:
    redactor = Redactor.parse(r"secret,phone,card,[0-9]{4}")
    text, counts = redactor.redact("token xoxb-1234-5678-9012-3456-abcdef")
    assert text == "token [secret withheld]" and counts == Counter({"secret": 1})


def test_redacting_twice_changes_nothing_more() -> None:
    once, _ = EVERYTHING.redact(f"a@b.io +1 415 555 0132 4111111111111111 password=x {JWT}")
    assert EVERYTHING.redact(once) == (once, Counter())


# custom expressions and the setting ----------------------------------------------------------------------


def test_a_custom_expression_is_withheld_as_a_pattern() -> None:
    redactor = Redactor.parse(r"email, ACME-[0-9]{4,}, (?i)project\s+falcon")
    assert redactor.kinds == frozenset({"email"}) and len(redactor.patterns) == 2
    text, counts = redactor.redact("ACME-12345 and Project Falcon, ask ada@example.com")
    assert text == "[withheld] and [withheld], ask [email withheld]"
    assert counts == Counter({"pattern": 2, "email": 1})


def test_commas_inside_expressions() -> None:
    """Commas in braces, brackets and parentheses belong to the expression; elsewhere they are escaped."""
    redactor = Redactor.parse(r"phone,[0-9]{2,3}-XYZ, Doe\, Jane, (?:a,b|c\,d)Q, [,;]{3}, K{1\,2}!")
    assert redactor.kinds == frozenset({"phone"})
    assert redactor.patterns == ("[0-9]{2,3}-XYZ", "Doe, Jane", r"(?:a,b|c,d)Q", "[,;]{3}", "K{1,2}!")
    text, counts = redactor.redact("12-XYZ by Doe, Jane: a,bQ c,dQ ,;, KK!")
    assert text == "[withheld] by [withheld]: [withheld] [withheld] [withheld] [withheld]"
    assert counts == Counter({"pattern": 6})


def test_kinds_ignore_case_and_spaces() -> None:
    assert Redactor.parse(" Email , PHONE,,secret ").kinds == frozenset({"email", "phone", "secret"})


@pytest.mark.parametrize("setting", [None, "", " ", " , ,"])
def test_no_setting_withholds_nothing(setting: str | None) -> None:
    redactor = Redactor.parse(setting)
    assert not redactor.active
    assert redactor.redact("ada@example.com 4111111111111111") == ("ada@example.com 4111111111111111", Counter())


def test_settings_compare_by_what_they_ask() -> None:
    assert Redactor.parse("email,x+") == Redactor.parse(" email , x+ ")
    assert Redactor.parse(None) == Redactor()


@pytest.mark.parametrize(
    "setting,named,why",
    [
        ("email,([a-z]", "'([a-z]'", "not a valid regular expression"),
        ("a*", "'a*'", "matches empty text"),
        ("emails", "'emails'", "is not one of"),
        ("credit_card", "'credit_card'", "is not one of"),
    ],
)
def test_a_bad_item_is_refused_by_name(setting: str, named: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        Redactor.parse(setting)
    message = str(info.value)
    assert named in message and why in message and "\n" not in message


def test_a_huge_bad_item_is_not_echoed_whole() -> None:
    with pytest.raises(ValueError) as info:
        Redactor.parse("(" + "a" * 10_000)
    assert len(str(info.value)) < 200 and "not a valid regular expression" in str(info.value)


def test_an_expression_that_matches_nothing_somewhere_inserts_nothing() -> None:
    assert Redactor.parse("(?<=a)").redact("banana") == ("banana", Counter())


# cost -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,
        "a" * 100_000 + "@",
        "a@" * 50_000,
        "a@b." * 25_000,
        "1" * 100_000,
        "1 " * 50_000,
        "1-" * 50_000,
        "+1" * 50_000,
        "(1) " * 25_000,
        "4111 " * 20_000,
        "xoxb-" + "a" * 100_000,
        "xoxb-" * 20_000,
        "password=" * 10_000,
        "password=" + "a" * 100_000,
        "-----BEGIN PRIVATE KEY-----" * 4_000,
        "-----BEGIN " + "A" * 100_000,
        "eyJ" + "a" * 50_000 + "." + "b" * 50_000,
        "eyJaaaaaaaaa." * 8_000,
        "<mailto:" * 12_500,
        "https://" + "1" * 100_000,
        "word " * 20_000,
    ],
    ids=lambda text: repr(text[:16]),
)
def test_long_hostile_inputs_finish(text: str) -> None:
    """No wall-clock assert: a pattern that backtracks badly would hang this test for minutes."""
    redacted, _ = EVERYTHING.redact(text)
    assert isinstance(redacted, str)


def test_text_with_nothing_to_withhold_comes_back_as_it_was() -> None:
    text = "How do I merge two dicts in Python 3.11? I tried `a | b` on 2024-01-15 and it failed. " * 100
    redacted, counts = EVERYTHING.redact(text)
    assert redacted == text and not counts


# the note -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "counts,note",
    [
        ({"email": 1}, "I withheld 1 email address from what I read."),
        ({"email": 2, "card": 1}, "I withheld 2 email addresses and 1 card number from what I read."),
        (
            {"secret": 1, "phone": 3, "pattern": 2, "email": 0},
            "I withheld 3 phone numbers, 1 key or password and 2 other private details from what I read.",
        ),
        ({}, ""),
    ],
)
def test_the_note_names_what_was_withheld(counts: dict[str, int], note: str) -> None:
    assert withheld_note(counts) == note
    assert "_" not in note  # plain text: the writer sets notes in italics
