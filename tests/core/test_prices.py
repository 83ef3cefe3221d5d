from __future__ import annotations

import pytest

from bot.core.prices import DEFAULT_PRICES, Price, cost, family, money, parse_prices, price_for, price_table

LARGE = Price(0.50, 1.50)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("", {}),
        ("   ", {}),
        ('{"local": {"input": 0, "output": 0}}', {"local": Price(0.0, 0.0)}),
        ('{"m": {"input": 0.5, "output": 1.5}}', {"m": Price(0.5, 1.5)}),
        ('{"m": [0.5, 1.5], "n": [2, 6]}', {"m": Price(0.5, 1.5), "n": Price(2.0, 6.0)}),
        ("m=0.5/1.5", {"m": Price(0.5, 1.5)}),
        ("m=0.5/1.5,local=0/0", {"m": Price(0.5, 1.5), "local": Price(0.0, 0.0)}),
        (" m = 0.5 / 1.5 , local=0/0, ", {"m": Price(0.5, 1.5), "local": Price(0.0, 0.0)}),
        ("org/model:7b=1e-1/2", {"org/model:7b": Price(0.1, 2.0)}),
        ("m=1/2,m=3/4", {"m": Price(3.0, 4.0)}),  # the last word wins, as in an environment
    ],
)
def test_parse_prices(raw: str, expected: dict[str, Price]) -> None:
    assert parse_prices(raw) == expected


@pytest.mark.parametrize(
    "raw,message",
    [
        ("m=0.5", "'m=0.5'"),
        ("m=0.5/1.5,broken", "'broken'"),
        ("m=a/1", "'m'"),
        ("m=-1/1", "'m': prices cannot be negative"),
        ("m=1/-0.5", "cannot be negative"),
        ("m=nan/1", "finite"),
        ("m=inf/1", "finite"),
        ('{"m": [1]}', "'m'"),
        ('{"m": [1, 2, 3]}', "'m'"),
        ('{"m": {"input": 1}}', "'m'"),
        ('{"m": {"input": 1, "output": 2, "extra": 3}}', "'m'"),
        ('{"m": [true, 1]}', "'m': prices must be numbers"),
        ('{"m": [null, 1]}', "'m': prices must be numbers"),
        ('{"m": [1, -2]}', "'m': prices cannot be negative"),
        ('{"m": 1}', "'m'"),
        ('{"m": [1, 2]', "not valid JSON"),
        ('{"m": [NaN, 2]}', "finite"),
    ],
)
def test_parse_prices_refuses_bad_entries_in_one_line(raw: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_prices(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_json_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse_prices("[0.5, 1.5]")


def test_price_table_puts_overrides_over_the_list_prices() -> None:
    table = price_table({"mistral-large-latest": Price(0, 0), "local": Price(0, 0)})
    assert table["mistral-large-latest"] == Price(0, 0)
    assert table["mistral-small-latest"] == DEFAULT_PRICES["mistral-small-latest"]
    assert table["local"] == Price(0, 0)
    assert DEFAULT_PRICES["mistral-large-latest"] == LARGE  # the built-in table is untouched


@pytest.mark.parametrize(
    "model,family_name",
    [
        ("mistral-large-latest", "mistral-large"),
        ("mistral-large-2512", "mistral-large"),
        ("Mistral-Small-2506", "mistral-small"),
        ("open-mistral-nemo", "open-mistral-nemo"),
        ("ministral-8b-latest", "ministral-8b"),
        ("mistral-large", "mistral-large"),
    ],
)
def test_family(model: str, family_name: str) -> None:
    assert family(model) == family_name


@pytest.mark.parametrize(
    "model,table,expected",
    [
        ("mistral-large-latest", DEFAULT_PRICES, LARGE),
        ("mistral-large-2512", DEFAULT_PRICES, LARGE),  # the dated model that served the alias
        ("mistral-small-2506", DEFAULT_PRICES, Price(0.15, 0.60)),
        ("mistral-medium-2508", DEFAULT_PRICES, Price(1.50, 7.50)),
        ("codestral-2508", DEFAULT_PRICES, None),
        ("mistral-tiny", DEFAULT_PRICES, None),
        ("", DEFAULT_PRICES, None),
        # an exact entry beats the family's
        ("mistral-large-2411", {**DEFAULT_PRICES, "mistral-large-2411": Price(2, 6)}, Price(2, 6)),
        # a family priced only by a dated name prices its other versions and its alias
        ("codestral-latest", {"codestral-2501": Price(0.3, 0.9)}, Price(0.3, 0.9)),
        ("codestral-2508", {"codestral-2501": Price(0.3, 0.9)}, Price(0.3, 0.9)),
        # the -latest alias wins over another dated entry of the family
        ("m-2603", {"m-2501": Price(9, 9), "m-latest": Price(1, 1)}, Price(1, 1)),
        # a self-hosted model by its exact name
        ("llama3:8b", {"llama3:8b": Price(0, 0)}, Price(0, 0)),
        ("mistral-large-2512", {}, None),
    ],
)
def test_price_for(model: str, table: dict[str, Price], expected: Price | None) -> None:
    assert price_for(model, table) == expected


@pytest.mark.parametrize(
    "price,prompt,completion,cached,expected",
    [
        (None, 1_000_000, 1_000_000, 0, 0.0),
        (LARGE, 0, 0, 0, 0.0),
        (LARGE, 1_000_000, 0, 0, 0.50),
        (LARGE, 0, 1_000_000, 0, 1.50),
        (LARGE, 1_000_000, 1_000_000, 0, 2.00),
        (LARGE, 1_000_000, 0, 1_000_000, 0.05),  # all cached: a tenth of the input price
        (LARGE, 1_000_000, 0, 400_000, 0.30 + 0.02),
        (LARGE, 2_000, 500, 1_000, (1_000 * 0.5 + 1_000 * 0.05 + 500 * 1.5) / 1e6),
        (Price(0, 0), 5_000, 5_000, 0, 0.0),
        (LARGE, 1_000, 0, 5_000, 1_000 * 0.05 / 1e6),  # more cached than prompt: counted as all cached
    ],
)
def test_cost(price: Price | None, prompt: int, completion: int, cached: int, expected: float) -> None:
    got = cost(price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    "amount,currency,text",
    [
        (0.0, "USD", "$0.00"),
        (12.345, "USD", "$12.35"),
        (1234.5, "USD", "$1,234.50"),
        (0.01, "USD", "$0.0100"),
        (0.0999, "USD", "$0.0999"),
        (0.1, "USD", "$0.10"),
        (0.0123, "USD", "$0.0123"),
        (0.00015, "USD", "$0.0001"),
        (0.00001, "USD", "<$0.0001"),
        (3.5, "EUR", "€3.50"),
        (3.5, "CHF", "3.50 CHF"),
        (0.002, "CHF", "0.0020 CHF"),
    ],
)
def test_money(amount: float, currency: str, text: str) -> None:
    assert money(amount, currency) == text
