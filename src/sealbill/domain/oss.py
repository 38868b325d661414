"""OSS (art. 58 and 59c of directive 2006/112/EC): electronically supplied services sold by a
French seller to consumers in other member states.

Place of supply is the consumer's member state, *unless* the seller's EU-wide total of such
sales stayed at or below €10,000 in the current and the previous calendar year and the seller
did not opt in: then French VAT applies (art. 59c). The switch happens **from the supply that
crosses the threshold** (that supply already taxed at the consumer's rate) and lasts for the
rest of that year and the whole next one.

Invariants:

- :class:`OssYear` is a running total in euro cents, fed supplies in billing order; a supply is
  taxed at the destination rate iff the seller opted in, or last year's total exceeded the
  threshold, or this year's total *including this supply* does;
- rates come from a versioned :class:`RateTable` (a data file of the package, one entry per
  change with its effective date); a reduced class is billed at the state's rate for
  e-publications, or at its standard rate where the data says the state has none
  (``"standard"``); a period whose rate is not recorded (``null``) is an error naming the
  country, never a guess;
- the place of supply needs two non-contradictory pieces of evidence (art. 24b of regulation
  282/2011): the billing country and an IP or bank country that agrees with it.

>>> year = OssYear(2026, previous_total=0, total=995_000)
>>> year.destination_applies(4_000), year.total  # 9,990 EUR: still French VAT
(False, 999000)
>>> year.destination_applies(2_000), year.total  # crosses 10,000 EUR with this supply
(True, 1001000)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sealbill.domain.taxes import TaxError, VatRateClass, normalize_country

THRESHOLD_EUR_MINOR = 1_000_000  # €10,000 (art. 59c(1)(c))
VIES_NOTE = "VAT id checked by format and checksum (python-stdnum); VIES not consulted"

#: French rate (the rate rating used) -> the class it stands for.
_FRENCH_CLASS = {rate_class.rate: rate_class for rate_class in VatRateClass}


#: The version of ``data/eu_vat_rates.json`` this module reads.
RATES_SCHEMA = "sealbill.eu_vat_rates.v2"
#: The value of ``reduced`` that says a state taxes such e-services at its standard rate.
STANDARD_ONLY = "standard"


@dataclass(frozen=True, slots=True)
class RateEntry:
    """One period of a member state's rates. ``reduced`` is ``None`` when the period's rate
    is not recorded; ``standard_only`` when the state applies its standard rate to the
    e-services a reduced French class stands for (then ``reduced`` equals ``standard``)."""

    effective_from: date
    standard: Decimal
    reduced: Decimal | None
    standard_only: bool = False
    #: E-press (newspapers, periodicals) where its rate differs from ``reduced``.
    press: Decimal | None = None


def _percent(text: object, what: str) -> Decimal:
    if not isinstance(text, str):
        raise ValueError(f"{what}: a rate is a string such as \"5.5\", got {text!r}")
    value = Decimal(text)
    if not value.is_finite() or not 0 <= value < 100:
        raise ValueError(f"{what}: {text!r} is not a percentage")
    return value


def _entry(row: Mapping[str, object]) -> RateEntry:
    """One entry of the data file; ``reduced`` must be present (a rate, "standard" or null)."""
    standard = _percent(row["standard"], "standard")
    reduced, day = row["reduced"], date.fromisoformat(str(row["from"]))
    press = None if row.get("press") is None else _percent(row["press"], "press")
    if reduced == STANDARD_ONLY:
        return RateEntry(day, standard, standard, True, press)
    return RateEntry(day, standard, None if reduced is None else _percent(reduced, "reduced"),
                     press=press)


@dataclass(frozen=True)
class RateTable:
    """Each member state's rates over time (entries sorted by ``effective_from``)."""

    entries: Mapping[str, tuple[RateEntry, ...]]

    @classmethod
    def from_json(cls, text: str) -> RateTable:
        """Parse the data file; a malformed entry raises naming the country."""
        data = json.loads(text)
        if data.get("schema") != RATES_SCHEMA:
            raise TaxError(f"rate table: schema {data.get('schema')!r}, expected {RATES_SCHEMA}")
        entries: dict[str, tuple[RateEntry, ...]] = {}
        for country, rows in data["rates"].items():
            try:
                parsed = sorted((_entry(r) for r in rows), key=lambda e: e.effective_from)
            except (KeyError, TypeError, ValueError, ArithmeticError) as error:
                raise TaxError(f"rate table: {country}: {error!s} "
                               f"({type(error).__name__})") from None
            entries[normalize_country(country)] = tuple(parsed)
        return cls(entries)

    def entry(self, country: str, on: date) -> RateEntry:
        """The entry of ``country`` in force on ``on``."""
        country = normalize_country(country)
        in_force = [e for e in self.entries.get(country, ()) if e.effective_from <= on]
        if not in_force:
            raise TaxError(f"OSS: no VAT rate recorded for {country} on {on}")
        return in_force[-1]

    def rate(self, country: str, rate_class: VatRateClass, on: date) -> Decimal:
        """The rate of ``country`` for a charge of ``rate_class`` on ``on``: the standard
        rate, or for a reduced class the state's rate for e-publications (its standard rate
        where it has none); the super-reduced class (French press) takes the state's e-press
        rate where the data records one apart."""
        entry = self.entry(country, on)
        if rate_class is VatRateClass.STANDARD:
            return entry.standard
        if rate_class is VatRateClass.SUPER_REDUCED and entry.press is not None:
            return entry.press
        if entry.reduced is None:
            raise TaxError(f"OSS: no reduced rate recorded for {normalize_country(country)} "
                           f"on {on} (charge of class {rate_class.value})")
        return entry.reduced


@dataclass
class OssYear:
    """The seller's running total of cross-border B2C e-services in ``year`` (euro cents)."""

    year: int
    previous_total: int
    total: int
    opted_in: bool = False

    def destination_applies(self, amount_eur_minor: int) -> bool:
        """Add one supply; whether it is taxed at the consumer's rate."""
        self.total += amount_eur_minor
        return (self.opted_in or self.previous_total > THRESHOLD_EUR_MINOR
                or self.total > THRESHOLD_EUR_MINOR)


@dataclass(frozen=True, slots=True)
class Evidence:
    """The pieces locating a consumer (ISO country codes), stored with the invoice."""

    billing_country: str
    ip_country: str | None = None
    bank_country: str | None = None
    notes: tuple[str, ...] = field(default=(VIES_NOTE,))

    def place_of_supply(self) -> str:
        """The billing country when another piece agrees with it; else :class:`TaxError`."""
        billing = normalize_country(self.billing_country)
        others = {normalize_country(c) for c in (self.ip_country, self.bank_country) if c}
        if billing not in others:
            found = ", ".join(sorted(others)) or "none"
            raise TaxError(f"place of supply: billing country {billing} needs a second "
                           f"agreeing piece of evidence (IP or bank country; got {found})")
        return billing

    def as_dict(self) -> dict[str, object]:
        return {"billing_country": self.billing_country, "ip_country": self.ip_country,
                "bank_country": self.bank_country, "notes": list(self.notes)}


def rate_class_of(french_rate: Decimal) -> VatRateClass:
    """The class a French rate stands for (20 → standard, 5.5 → reduced, ...)."""
    try:
        return _FRENCH_CLASS[french_rate.normalize()]
    except KeyError:
        raise TaxError(f"OSS: {french_rate} % is not a French rate") from None
