"""VAT determination for a French seller: a pure function of who sells what to whom.

The buyer's VAT number is validated *outside* the domain (python-stdnum, VIES); this module only
receives the verdict as ``buyer_vat_id_valid``. Countries are ISO 3166-1 alpha-2 codes; the
Greek VAT prefix ``EL`` is accepted as an alias of ``GR``.

Rules (seller established in France, services):

- buyer in France (or Monaco, part of the French VAT territory) → category ``S`` at the French
  rate of the charge's rate class;
- buyer in another EU member state, acting as a business, with a valid VAT number → ``AE``
  (reverse charge) at 0 % with the "Autoliquidation" mention (art. 283-2 CGI, art. 196 of
  directive 2006/112/CE);
- buyer in another EU member state without both of those (consumer, or business without a valid
  VAT number) → French VAT, category ``S``;
- buyer outside the EU → out of scope of French VAT, category ``O`` (EN 16931 "not subject to
  VAT": a service whose place of supply is at the customer, outside the EU), no VAT, with the
  mention "TVA non applicable, art. 259-1 du CGI" for a business and "art. 259 B du CGI" for a
  consumer (electronically supplied services to a non-EU consumer).

Invariants: a 0 % treatment always carries both mentions and an exemption reason; a taxed
treatment carries none; the rate is a ``Decimal`` percent.

>>> determine_vat("FR", "FR", False, False, VatRateClass.STANDARD).rate
Decimal('20')
>>> t = determine_vat("FR", "DE", True, True, VatRateClass.REDUCED)
>>> t.category.value, t.rate, t.mention_fr.split(" - ")[0]
('AE', Decimal('0'), 'Autoliquidation')
>>> determine_vat("FR", "BE", True, False, VatRateClass.REDUCED).rate
Decimal('5.5')
>>> determine_vat("FR", "US", True, False, VatRateClass.STANDARD).category.value
'O'
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from sealbill.domain.invoices import VatCategory

SELLER_COUNTRY = "FR"

#: The 27 member states of the European Union (ISO 3166-1 alpha-2), since 1 February 2020.
EU_MEMBER_STATES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)

#: Territories that are French for VAT purposes (art. 7 of directive 2006/112/CE for Monaco).
FRENCH_VAT_TERRITORY: frozenset[str] = frozenset({"FR", "MC"})

_COUNTRY_ALIASES = {"EL": "GR"}


class TaxError(ValueError):
    """A VAT question this module refuses to answer (unknown country format, foreign seller)."""


class VatRateClass(StrEnum):
    """French VAT rate classes (art. 278 et seq. CGI), mainland rates."""

    STANDARD = "standard"
    INTERMEDIATE = "intermediate"
    REDUCED = "reduced"
    SUPER_REDUCED = "super_reduced"

    @property
    def rate(self) -> Decimal:
        """The rate in percent.

        >>> [c.rate for c in VatRateClass]
        [Decimal('20'), Decimal('10'), Decimal('5.5'), Decimal('2.1')]
        """
        return _FRENCH_RATES[self]


_FRENCH_RATES: dict[VatRateClass, Decimal] = {
    VatRateClass.STANDARD: Decimal("20"),
    VatRateClass.INTERMEDIATE: Decimal("10"),
    VatRateClass.REDUCED: Decimal("5.5"),
    VatRateClass.SUPER_REDUCED: Decimal("2.1"),
}

REVERSE_CHARGE_MENTION_FR = (
    "Autoliquidation - article 283-2 du CGI / article 196 de la directive 2006/112/CE"
)
REVERSE_CHARGE_MENTION_EN = "Reverse charge - article 196 of Council Directive 2006/112/EC"
EXPORT_MENTION_FR = "TVA non applicable, article 259-1 du CGI"
EXPORT_MENTION_EN = "VAT not applicable, article 259-1 of the French tax code (CGI)"
OUTSIDE_EU_CONSUMER_MENTION_FR = "TVA non applicable, article 259 B du CGI"
OUTSIDE_EU_CONSUMER_MENTION_EN = ("VAT not applicable, article 259 B of the French tax code "
                                  "(CGI): services supplied outside the EU")


@dataclass(frozen=True, slots=True)
class VatTreatment:
    """How one charge is taxed for one buyer.

    ``mention_fr``/``mention_en`` are the legal mentions to print (empty when VAT is charged);
    ``exemption_reason`` is the EN 16931 BT-120 text (``None`` when VAT is charged).
    """

    category: VatCategory
    rate: Decimal
    mention_fr: str = ""
    mention_en: str = ""
    exemption_reason: str | None = None

    def mention(self, locale: str) -> str:
        """The legal mention in ``locale`` ("fr" or "en"); French for any other locale."""
        return self.mention_en if locale == "en" else self.mention_fr


def normalize_country(code: str, *, field: str = "country") -> str:
    """Upper-case ISO 3166-1 alpha-2 code; ``EL`` becomes ``GR``.

    >>> normalize_country(" el ")
    'GR'
    >>> normalize_country("France")
    Traceback (most recent call last):
    ...
    sealbill.domain.taxes.TaxError: country: not an ISO 3166-1 alpha-2 code: 'France'
    """
    text = code.strip().upper()
    if len(text) != 2 or not text.isascii() or not text.isalpha():
        raise TaxError(f"{field}: not an ISO 3166-1 alpha-2 code: {code!r}")
    return _COUNTRY_ALIASES.get(text, text)


def is_eu_member(country: str) -> bool:
    """True for the 27 EU member states (France included).

    >>> is_eu_member("DE"), is_eu_member("CH"), is_eu_member("GB")
    (True, False, False)
    """
    return normalize_country(country) in EU_MEMBER_STATES


def determine_vat(
    seller_country: str,
    buyer_country: str,
    buyer_is_business: bool,
    buyer_vat_id_valid: bool,
    rate_class: VatRateClass,
) -> VatTreatment:
    """The VAT treatment of a charge of ``rate_class`` sold by a French seller to this buyer.

    ``buyer_vat_id_valid`` only matters for an EU business outside France.

    >>> determine_vat("FR", "IT", False, True, VatRateClass.STANDARD).category.value
    'S'
    >>> determine_vat("FR", "MC", True, True, VatRateClass.INTERMEDIATE).rate
    Decimal('10')
    >>> determine_vat("DE", "FR", True, True, VatRateClass.STANDARD)
    Traceback (most recent call last):
    ...
    sealbill.domain.taxes.TaxError: seller_country: only French sellers are supported, got 'DE'
    """
    seller = normalize_country(seller_country, field="seller_country")
    if seller != SELLER_COUNTRY:
        raise TaxError(
            f"seller_country: only French sellers are supported, got {seller_country!r}"
        )
    buyer = normalize_country(buyer_country, field="buyer_country")
    rate_class = VatRateClass(rate_class)
    if buyer in FRENCH_VAT_TERRITORY:
        return VatTreatment(VatCategory.STANDARD, rate_class.rate)
    if buyer in EU_MEMBER_STATES:
        if buyer_is_business and buyer_vat_id_valid:
            return VatTreatment(
                VatCategory.REVERSE_CHARGE,
                Decimal("0"),
                REVERSE_CHARGE_MENTION_FR,
                REVERSE_CHARGE_MENTION_EN,
                REVERSE_CHARGE_MENTION_FR,
            )
        return VatTreatment(VatCategory.STANDARD, rate_class.rate)
    if buyer_is_business:
        return VatTreatment(VatCategory.OUT_OF_SCOPE, Decimal("0"), EXPORT_MENTION_FR,
                            EXPORT_MENTION_EN, EXPORT_MENTION_FR)
    return VatTreatment(VatCategory.OUT_OF_SCOPE, Decimal("0"), OUTSIDE_EU_CONSUMER_MENTION_FR,
                        OUTSIDE_EU_CONSUMER_MENTION_EN, OUTSIDE_EU_CONSUMER_MENTION_FR)


@dataclass(frozen=True, slots=True)
class VatContext:
    """The VAT-relevant facts about one account, fixed for one rating run.

    >>> ctx = VatContext(buyer_country="ES", buyer_is_business=True, buyer_vat_id_valid=True)
    >>> ctx.treatment(VatRateClass.STANDARD).category.value
    'AE'
    """

    buyer_country: str
    buyer_is_business: bool
    buyer_vat_id_valid: bool
    seller_country: str = SELLER_COUNTRY

    def treatment(self, rate_class: VatRateClass) -> VatTreatment:
        return _determine_vat(
            self.seller_country,
            self.buyer_country,
            self.buyer_is_business,
            self.buyer_vat_id_valid,
            rate_class,
        )


#: :func:`determine_vat`, cached: a treatment is a frozen value of a handful of hashable inputs,
#: asked for on every line of every account of a run (a refused input raises, uncached).
_determine_vat = lru_cache(maxsize=1024)(determine_vat)
