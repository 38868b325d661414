"""Money, VAT, OSS and exchange rates of the reference calculator (``reference.py``), written
from the rules, sharing no code with ``sealbill.domain``.

- **Amounts** are integers of ISO 4217 minor units. An amount on an invoice has at most two
  decimals (EN 16931 BR-DEC-*, French CTC BR-FR-DEC-01): EUR and USD two, JPY none (whole
  yen). **KWD has three minor digits (fils), but sealbill rounds KWD amounts to 0.01 KWD**
  (whole multiples of 10 fils), because EN 16931 allows two decimals on amounts; they are
  stored in fils. Rounding is half-up (away from zero), once per line, once per VAT group.
- **VAT** of a French seller of electronically supplied services, per buyer: French buyers
  (business or consumer) pay French VAT (S) at the rate of the charge's class; an EU business
  with a valid VAT id is reverse-charged (AE, 0 %); an EU consumer — or an EU business without
  a valid VAT id, which is treated as one — pays French VAT until OSS applies, then its
  country's rate; a buyer outside the EU is out of scope (O, no VAT). VAT is computed per
  (category, rate) over the sum of that group's lines.
- **OSS** (art. 59c of directive 2006/112/EC): the seller's 2026 total of such cross-border
  consumer sales (amounts excluding VAT, in euros at the exchange rate of the run's first
  day; credit notes count 0) is kept in the order the runs bill the accounts; a supply is
  taxed at the consumer's rate when the seller opted in or when the total *including that
  supply* exceeds €10,000 (the supply that crosses it is the first one). No sale was made in
  2025 in these cases, so the previous year never decides.
- **BT-111** (invoice not in EUR, with VAT): the VAT total divided by the rate of the issue
  date (units of the currency per euro), half-up to the cent.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

#: ISO 4217 exponent, decimals of an invoice amount.
CURRENCIES = {"EUR": (2, 2), "USD": (2, 2), "JPY": (0, 0), "KWD": (3, 2)}

FRENCH_RATES = {"standard": Fraction(20), "intermediate": Fraction(10),
                "reduced": Fraction(11, 2), "super_reduced": Fraction(21, 10)}

#: Standard VAT rates in force in November 2026 in the member states the generator uses
#: (European Commission, TEDB): written here, not read from sealbill's data file.
OSS_RATES = {"DE": Fraction(19), "IT": Fraction(22), "FI": Fraction(51, 2),
             "HU": Fraction(27), "LU": Fraction(17)}

#: Kind of buyer -> (is a business, VAT id valid, region).
KINDS = {"fr_business": (True, True, "FR"), "fr_consumer": (False, False, "FR"),
         "eu_business": (True, True, "EU"), "eu_no_vat_id": (True, False, "EU"),
         "eu_consumer": (False, False, "EU"), "non_eu_business": (True, False, "XX"),
         "non_eu_consumer": (False, False, "XX")}

THRESHOLD_EUR_CENTS = 1_000_000

#: Units of the currency per euro, by the day they apply from.
EXCHANGE = {"USD": {date(2026, 9, 1): Fraction("1.0823"), date(2026, 11, 1): Fraction("1.1047")},
            "JPY": {date(2026, 9, 1): Fraction("162.5"), date(2026, 11, 1): Fraction("160.13")},
            "KWD": {date(2026, 9, 1): Fraction("0.3312"), date(2026, 11, 1): Fraction("0.3391")}}


def half_up(value: Fraction, currency: str) -> int:
    """``value`` (major units) in whole invoice units (cents; yen; hundredths of a dinar)."""
    scaled = abs(value) * 10 ** CURRENCIES[currency][1]
    whole = scaled.numerator // scaled.denominator
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    return whole if value >= 0 else -whole


def to_minor_units(units: int, currency: str) -> int:
    """Invoice units as ISO minor units (×10 for KWD: fils)."""
    exponent, decimals = CURRENCIES[currency]
    return units * 10 ** (exponent - decimals)


def major(minor: int, currency: str) -> Fraction:
    return Fraction(minor, 10 ** CURRENCIES[currency][0])


def text(minor: int, currency: str) -> str:
    """An amount as the XML writes it (``12.30``, ``1234``)."""
    decimals = CURRENCIES[currency][1]
    units = minor // 10 ** (CURRENCIES[currency][0] - decimals)
    sign, units = ("-" if units < 0 else ""), abs(units)
    if decimals == 0:
        return f"{sign}{units}"
    return f"{sign}{units // 10 ** decimals}.{units % 10 ** decimals:0{decimals}d}"


def rate_text(rate: Fraction) -> str:
    """``20``, ``5.5``, ``25.5``, ``0``."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{rate.numerator / rate.denominator:g}"


def exchange_rate(currency: str, day: date) -> Fraction:
    return max((d, r) for d, r in EXCHANGE[currency].items() if d <= day)[1]


def vat_of(kind: str, country: str, vat_class: str, oss: bool) -> tuple[str, Fraction]:
    """(EN 16931 category, rate in percent) of a line for this buyer."""
    business, valid, region = KINDS[kind]
    if region == "XX":
        return "O", Fraction(0)
    if region == "EU" and business and valid:
        return "AE", Fraction(0)
    if oss:
        return "S", OSS_RATES[country]
    return "S", FRENCH_RATES[vat_class]


def oss_candidate(kind: str) -> bool:
    business, valid, region = KINDS[kind]
    return region == "EU" and not (business and valid)


def breakdown(lines: list[tuple[int, str, Fraction]], currency: str
              ) -> tuple[tuple[str, str, int, int], ...]:
    """(category, rate, base, VAT) per group of the (amount, category, rate) lines."""
    groups: dict[tuple[str, Fraction], int] = {}
    for amount, category, rate in lines:
        groups[(category, rate)] = groups.get((category, rate), 0) + amount
    return tuple(sorted(
        (category, rate_text(rate), base,
         to_minor_units(half_up(major(base, currency) * rate / 100, currency), currency))
        for (category, rate), base in groups.items()))


def in_euro_cents(minor: int, currency: str, day: date) -> int:
    if currency == "EUR":
        return minor
    return half_up(major(minor, currency) / exchange_rate(currency, day), "EUR")
