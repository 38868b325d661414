"""The member states' OSS rates shipped with sealbill (``domain/data/eu_vat_rates.json``):
every state has a standard rate and a rate for a reduced-class e-service (its own reduced rate
for e-publications, or its standard rate where it has none, said so in the data)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from importlib import resources

import pytest

from sealbill.domain.oss import RateTable
from sealbill.domain.taxes import EU_MEMBER_STATES, TaxError, VatRateClass
from sealbill.pipeline.billing.oss import rate_table

DATA = resources.files("sealbill.domain").joinpath("data/eu_vat_rates.json")
REDUCED = [c for c in VatRateClass if c is not VatRateClass.STANDARD]


@pytest.mark.parametrize("country", sorted(EU_MEMBER_STATES))
@pytest.mark.parametrize("day", [date(2025, 1, 1), date(2026, 11, 1)])
def test_every_member_state_has_a_rate_for_every_class(country: str, day: date) -> None:
    table = rate_table()
    standard = table.rate(country, VatRateClass.STANDARD, day)
    assert standard > 10
    for rate_class in REDUCED:
        assert 0 <= table.rate(country, rate_class, day) <= standard


@pytest.mark.parametrize(("country", "reduced"), [
    ("AT", "10"), ("BE", "6"), ("BG", "9"), ("CZ", "0"), ("DE", "7"), ("EE", "9"),
    ("ES", "4"), ("FI", "14"), ("GR", "6"), ("HR", "5"), ("IE", "0"), ("IT", "4"),
    ("LT", "9"), ("LU", "3"), ("LV", "5"), ("MT", "5"), ("NL", "9"), ("PL", "5"),
    ("PT", "6"), ("RO", "11"), ("SE", "6"), ("SI", "5"), ("SK", "5"),
    # No reduced rate for e-publications: the standard rate, said so in the data.
    ("CY", "19"), ("DK", "25"), ("HU", "27"),
])
def test_the_e_publication_rate_in_force_in_2026(country: str, reduced: str) -> None:
    assert rate_table().rate(country, VatRateClass.REDUCED, date(2026, 11, 1)) == Decimal(
        reduced)


def test_states_without_a_reduced_rate_for_e_services_say_so() -> None:
    rates = json.loads(DATA.read_text(encoding="utf-8"))["rates"]
    standard_only = {c for c, rows in rates.items() if rows[-1]["reduced"] == "standard"}
    assert standard_only == {"CY", "DK", "HU"}
    assert all(row.get("source") for rows in rates.values() for row in rows)
    table = rate_table()
    assert all(table.entry(c, date(2026, 1, 1)).standard_only for c in standard_only)


@pytest.mark.parametrize(("country", "press", "books"), [
    ("PL", "8", "5"), ("LT", "5", "9"), ("FI", "10", "14"), ("DE", "7", "7"), ("DK", "25", "25"),
])
def test_the_press_class_takes_the_e_press_rate_where_it_differs(
        country: str, press: str, books: str) -> None:
    table, day = rate_table(), date(2026, 11, 1)
    assert table.rate(country, VatRateClass.SUPER_REDUCED, day) == Decimal(press)
    assert table.rate(country, VatRateClass.REDUCED, day) == Decimal(books)
    assert table.rate(country, VatRateClass.INTERMEDIATE, day) == Decimal(books)


def test_rates_change_on_their_effective_date() -> None:
    table = rate_table()
    assert table.rate("EE", VatRateClass.STANDARD, date(2025, 6, 30)) == 22
    assert table.rate("EE", VatRateClass.STANDARD, date(2025, 7, 1)) == 24
    assert table.rate("RO", VatRateClass.REDUCED, date(2025, 7, 31)) == 5
    assert table.rate("RO", VatRateClass.REDUCED, date(2025, 8, 1)) == 11
    assert table.rate("IE", VatRateClass.REDUCED, date(2024, 12, 31)) == 9
    assert table.rate("IE", VatRateClass.REDUCED, date(2025, 1, 1)) == 0
    assert table.rate("AT", VatRateClass.SUPER_REDUCED, date(2021, 12, 31)) == 5
    assert table.rate("FI", VatRateClass.SUPER_REDUCED, date(2024, 12, 31)) == 10
    assert table.rate("FI", VatRateClass.REDUCED, date(2024, 12, 31)) == 10


def test_a_period_without_a_recorded_rate_is_refused_naming_the_state() -> None:
    with pytest.raises(TaxError, match="no reduced rate recorded for LV on 2024-06-01"):
        rate_table().rate("LV", VatRateClass.REDUCED, date(2024, 6, 1))
    with pytest.raises(TaxError, match="no VAT rate recorded for DE on 2021-06-30"):
        rate_table().rate("DE", VatRateClass.STANDARD, date(2021, 6, 30))


@pytest.mark.parametrize(("row", "message"), [
    ({"from": "2026-01-01", "standard": "20"}, "'reduced'"),
    ({"from": "2026-01-01", "standard": "20", "reduced": 7}, "a rate is a string"),
    ({"from": "2026-01-01", "standard": "120", "reduced": "7"}, "not a percentage"),
    ({"from": "2026-01-01", "standard": "20", "reduced": "7", "press": "-1"}, "press"),
])
def test_a_malformed_entry_is_refused_naming_the_country(row: dict[str, object],
                                                         message: str) -> None:
    text = json.dumps({"schema": "sealbill.eu_vat_rates.v2", "rates": {"DE": [row]}})
    with pytest.raises(TaxError, match=f"rate table: DE: .*{message}"):
        RateTable.from_json(text)


def test_a_data_file_of_another_version_is_refused() -> None:
    with pytest.raises(TaxError, match="schema"):
        RateTable.from_json(json.dumps({"schema": "sealbill.eu_vat_rates.v1", "rates": {}}))
