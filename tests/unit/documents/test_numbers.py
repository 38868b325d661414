"""The compiled number formats say exactly what Babel says, for every supported currency."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, format_decimal, format_percent
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sealbill.documents import i18n
from sealbill.documents.numbers import compiled_currency
from sealbill.domain.money import CURRENCY_EXPONENTS, to_major

LOCALES = ("fr", "en", "fr_BE", "de_DE", "en_US")
currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
locales = st.sampled_from(LOCALES)
decimals = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=None,
                       allow_nan=False, allow_infinity=False).filter(
    lambda d: d.as_tuple().exponent >= -12)  # type: ignore[operator]


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=-10**14, max_value=10**14), currencies, locales)
@example(0, "EUR", "fr")
@example(-1, "EUR", "en")
@example(-100, "JPY", "fr")
@example(1_234_567, "KWD", "fr_BE")
@example(-999_999, "EUR", "de_DE")
def test_money_text_equals_babel(minor: int, currency: str, locale: str) -> None:
    loc = i18n.babel_locale(locale)
    expected = format_currency(to_major(minor, currency), currency, locale=loc)
    assert i18n.money_text(minor, currency, locale) == expected


@settings(max_examples=400, deadline=None)
@given(decimals, currencies, locales)
def test_price_text_equals_babel(price: Decimal, currency: str, locale: str) -> None:
    loc = i18n.babel_locale(locale)
    expected = format_currency(price, currency, locale=loc, decimal_quantization=False)
    assert i18n.price_text(price, currency, locale) == expected


@settings(max_examples=400, deadline=None)
@given(decimals, locales)
def test_quantity_and_rate_texts_equal_babel(value: Decimal, locale: str) -> None:
    loc = i18n.babel_locale(locale)
    assert i18n.quantity_text(value, locale) == format_decimal(
        value, locale=loc, decimal_quantization=False)
    assert i18n.rate_text(value, locale) == format_percent(
        value / 100, locale=loc, decimal_quantization=False)


def test_every_supported_currency_is_compiled_in_french_and_english() -> None:
    for locale in ("fr", "en"):
        for currency in CURRENCY_EXPONENTS:
            assert compiled_currency(currency, i18n.babel_locale(locale)) is not None


def test_kept_texts_follow_the_value_and_its_sign_not_the_first_spelling() -> None:
    """The formatters keep the texts they made: equal values written differently share one,
    and -0 (which equals 0) keeps its own, in whichever order they come."""
    loc = i18n.babel_locale("en")
    for values in ((Decimal("20"), Decimal("20.00"), Decimal("20.0")),
                   (Decimal("0.00"), Decimal("-0.00"), Decimal("0")),
                   (Decimal("-0"), Decimal("0E+2"), Decimal("-0.000"))):
        for value in values:
            assert i18n.quantity_text(value, "en") == format_decimal(
                value, locale=loc, decimal_quantization=False)
            assert i18n.price_text(value, "EUR", "en") == format_currency(
                value, "EUR", locale=loc, decimal_quantization=False)
