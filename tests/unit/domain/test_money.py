"""Money: integer minor units, one half-up rule, no float anywhere."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.money import (
    CURRENCY_EXPONENTS,
    Money,
    MoneyError,
    document_step,
    format_plain,
    parse_decimal,
    to_major,
    to_minor,
)

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
amounts = st.integers(min_value=-10**15, max_value=10**15)


@given(amounts, currencies)
def test_minor_units_survive_a_round_trip_through_major_units(minor: int, currency: str) -> None:
    # Invoice amounts are multiples of the document step (10 fils for a 3-decimal currency:
    # EN 16931 allows 2 decimals); those survive exactly.
    minor -= minor % document_step(currency)
    assert to_minor(to_major(minor, currency), currency) == minor
    assert Decimal(format_plain(Money(minor, currency))) == to_major(minor, currency)


@given(st.lists(amounts, min_size=1, max_size=50), currencies)
def test_adding_money_never_loses_a_minor_unit(parts: list[int], currency: str) -> None:
    total = Money.zero(currency)
    for part in parts:
        total = total + Money(part, currency)
    assert total.amount_minor == sum(parts)


@given(st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, allow_infinity=False,
                   places=6), currencies)
def test_rounding_is_half_up_and_within_half_a_minor_unit(value: Decimal, currency: str) -> None:
    minor = to_minor(value, currency)
    assert minor % document_step(currency) == 0
    error = abs(to_major(minor, currency) - value)
    half = Decimal(1).scaleb(-min(CURRENCY_EXPONENTS[currency], 2)) / 2
    assert error <= half
    if error == half:  # a tie goes away from zero
        assert abs(to_major(minor, currency)) > abs(value)


def test_floats_and_mixed_currencies_are_refused() -> None:
    with pytest.raises(MoneyError, match="float"):
        parse_decimal(0.1)  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="int"):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="cannot combine"):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(MoneyError, match="unknown currency"):
        Money(1, "XXX")
