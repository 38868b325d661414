"""Locale-aware formatting and the printed labels of invoice documents (French and English).

Invariants:
- every number, amount and date a person reads goes through Babel with the invoice's locale;
  the machine formats (CII XML) never come from here but from ``money.format_plain``;
- amounts enter as ``int`` minor units and are converted exactly (``to_major``), never floats;
- unit prices and quantities keep every digit they carry (``decimal_quantization=False``):
  rounding a 0.000012 EUR unit price to 0.00 on paper would misstate the contract;
- an unknown language falls back to English labels, but its locale still drives Babel.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Final

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent

from sealbill.documents import numbers
from sealbill.domain.money import exponent, to_major

# "en" alone would give US month-first dates; sealbill bills in Europe, so English documents
# use the Irish English conventions (day-month-year, euro sign before the amount).
_BABEL_LOCALES: Final = {"fr": "fr_FR", "en": "en_IE"}


@lru_cache(maxsize=32)
def babel_locale(code: str) -> Locale:
    """The Babel locale of an invoice's ``locale`` field ("fr", "en", or a full "fr_BE")."""
    return Locale.parse(_BABEL_LOCALES.get(code, code))


@lru_cache(maxsize=64)
def language(code: str) -> str:
    """Two-letter language whose labels are printed ("fr" or "en")."""
    lang = code.split("_")[0].split("-")[0].lower()
    return lang if lang in LABELS else "en"


def money_text(amount_minor: int, currency: str, locale: str) -> str:
    """``123456, "EUR", "fr"`` -> ``"1 234,56 €"`` (with the locale's non-breaking spaces)."""
    fast = _money_format(currency, locale)
    if fast is not None:
        return fast.minor(amount_minor, exponent(currency))
    return format_currency(to_major(amount_minor, currency), currency,
                           locale=babel_locale(locale))


@lru_cache(maxsize=256)
def _money_format(currency: str, locale: str) -> numbers.Compiled | None:
    """The compiled format of amounts in ``currency`` for ``locale`` when it prints exactly
    the currency's digits (looked up by the two strings: hashing a Babel ``Locale`` costs a
    Python call, and an invoice prints some thirty amounts)."""
    fast = numbers.compiled_currency(currency, babel_locale(locale))
    return fast[0] if fast is not None and fast[1] == exponent(currency) else None


def price_text(unit_price: Decimal, currency: str, locale: str) -> str:
    """A unit price with all its digits but at least the currency's (0.000012 € stays so)."""
    loc = babel_locale(locale)
    fast = numbers.compiled_currency(currency, loc)
    if fast is not None:
        return fast[0](unit_price, fast[1])
    return format_currency(unit_price, currency, locale=loc, decimal_quantization=False)


def quantity_text(quantity: Decimal, locale: str) -> str:
    loc = babel_locale(locale)
    fast = numbers.compiled_decimal(loc)
    if fast is not None:
        return fast(quantity, 0)
    return format_decimal(quantity, locale=loc, decimal_quantization=False)


def rate_text(rate: Decimal, locale: str) -> str:
    """``Decimal("5.5")`` -> ``"5,5 %"`` in French, ``"5.5%"`` in English."""
    loc = babel_locale(locale)
    fast = numbers.compiled_percent(loc)
    if fast is not None:
        return fast(rate, 0)
    return format_percent(rate / 100, locale=loc, decimal_quantization=False)


@lru_cache(maxsize=4096)
def date_text(value: date, locale: str) -> str:
    return format_date(value, format="long", locale=babel_locale(locale))


def label(locale: str, key: str) -> str:
    """The printed label ``key`` in the invoice's language; a missing key is a bug (KeyError)."""
    return LABELS[language(locale)][key]


LABELS: Final[dict[str, dict[str, str]]] = {
    "fr": {
        "invoice": "Facture",
        "credit_note": "Avoir",
        "number": "Numéro",
        "issue_date": "Date d'émission",
        "due_date": "Date d'échéance",
        "period": "Période",
        "period_range": "du {start} au {end}",
        "account_reference": "Référence client",
        "corrected_invoice": "Facture d'origine",
        "corrected_dated": "{number} du {date}",
        "billed_to": "Facturé à",
        "seller": "Émetteur",
        "siren": "SIREN",
        "siret": "SIRET",
        "vat_id": "N° TVA",
        "legal_id": "Identifiant légal",
        "iban": "IBAN",
        "bic": "BIC",
        "email": "E-mail",
        "phone": "Tél.",
        "website": "Site",
        "description": "Désignation",
        "quantity": "Qté",
        "unit_price": "Prix unitaire HT",
        "vat_rate": "TVA",
        "amount_excl": "Montant HT",
        "vat_breakdown": "Détail de la TVA",
        "vat_base": "Base HT",
        "vat_amount": "Montant TVA",
        "category_S": "TVA {rate}",
        "category_AE": "Autoliquidation",
        "category_G": "Exonération (export)",
        "category_E": "Exonération",
        "category_Z": "Taux zéro",
        "category_O": "Hors champ de la TVA",
        "total_excl": "Total HT",
        "total_vat": "Total TVA",
        "total_incl": "Total TTC",
        "amount_due": "Net à payer",
        "amount_credited": "Montant de l'avoir",
        "payment": "Paiement",
        "pay_by_transfer": "Par virement sur le compte ci-dessous, avant le {date}.",
        "pay_by_card": "Prélevé automatiquement sur la carte {display} à l'échéance.",
        "pay_by_sepa_debit": "Prélevé par prélèvement SEPA sur le compte {display} le {date}.",
        "pay_reference": "Référence à rappeler : {number}",
        "means_transfer": "Virement SEPA",
        "means_card": "Carte bancaire",
        "means_sepa_debit": "Prélèvement SEPA",
        "refund_note": "Cet avoir sera déduit de votre prochaine facture ou remboursé.",
        "operation_B": "Nature de l'opération : livraison de biens",
        "operation_S": "Nature de l'opération : prestation de services",
        "operation_M": "Nature de l'opération : livraison de biens et prestation de services",
        "page": "Page",
        "mentions": "Mentions légales",
        # Legal mentions (Code de commerce L441-9, L441-10, D441-5; CGI 242 nonies A).
        "note_PMT_b2b": (
            "En cas de retard de paiement, une indemnité forfaitaire pour frais de recouvrement "
            "de 40 € est due (art. L441-10 et D441-5 du Code de commerce)."
        ),
        "note_PMT_b2c": (
            "Indemnité forfaitaire pour frais de recouvrement : non applicable "
            "(client non professionnel)."
        ),
        "note_PMD": (
            "Pénalités de retard : taux d'intérêt appliqué par la BCE à son opération de "
            "refinancement la plus récente, majoré de 10 points, exigibles dès le lendemain de "
            "la date d'échéance (art. L441-10 du Code de commerce)."
        ),
        "note_AAB": "Pas d'escompte pour paiement anticipé.",
        "credit_applied": "Avoir imputé",
        "oss_note": "TVA de l'État membre du client ({country}) : services fournis par voie "
                    "électronique à un non-assujetti, art. 259 D du CGI, déclarée via le "
                    "guichet unique (OSS).",
        "exchange_rate_note": "Taux de change : 1 {accounting} = {rate} {currency} ({source}, "
                              "{date}) ; montant de la TVA : {vat} {accounting}.",
        "exempt_AE": (
            "Autoliquidation : TVA due par le preneur (art. 283-2 du CGI ; "
            "art. 196 de la directive 2006/112/CE)."
        ),
        "exempt_G": (
            "Exonération de TVA : exportation hors de l'Union européenne "
            "(art. 262 I du CGI ; prestations de services : art. 259-1 du CGI)."
        ),
        "exempt_E": "Exonération de TVA.",
        "exempt_O": "TVA non applicable : prestation hors du champ de la TVA française.",
    },
    "en": {
        "invoice": "Invoice",
        "credit_note": "Credit note",
        "number": "Number",
        "issue_date": "Issue date",
        "due_date": "Due date",
        "period": "Period",
        "period_range": "{start} to {end}",
        "account_reference": "Customer reference",
        "corrected_invoice": "Original invoice",
        "corrected_dated": "{number} of {date}",
        "billed_to": "Billed to",
        "seller": "From",
        "siren": "SIREN",
        "siret": "SIRET",
        "vat_id": "VAT no.",
        "legal_id": "Legal id",
        "iban": "IBAN",
        "bic": "BIC",
        "email": "Email",
        "phone": "Phone",
        "website": "Web",
        "description": "Description",
        "quantity": "Qty",
        "unit_price": "Unit price excl. VAT",
        "vat_rate": "VAT",
        "amount_excl": "Amount excl. VAT",
        "vat_breakdown": "VAT breakdown",
        "vat_base": "Taxable amount",
        "vat_amount": "VAT amount",
        "category_S": "VAT {rate}",
        "category_AE": "Reverse charge",
        "category_G": "Exempt (export)",
        "category_E": "Exempt",
        "category_Z": "Zero rated",
        "category_O": "Outside the scope of VAT",
        "total_excl": "Total excl. VAT",
        "total_vat": "Total VAT",
        "total_incl": "Total incl. VAT",
        "amount_due": "Amount due",
        "amount_credited": "Amount credited",
        "payment": "Payment",
        "pay_by_transfer": "By bank transfer to the account below, before {date}.",
        "pay_by_card": "Charged automatically to card {display} on the due date.",
        "pay_by_sepa_debit": "Collected by SEPA direct debit from account {display} on {date}.",
        "pay_reference": "Payment reference: {number}",
        "means_transfer": "SEPA credit transfer",
        "means_card": "Bank card",
        "means_sepa_debit": "SEPA direct debit",
        "refund_note": "This credit will be deducted from your next invoice or refunded.",
        "operation_B": "Type of transaction: supply of goods",
        "operation_S": "Type of transaction: supply of services",
        "operation_M": "Type of transaction: supply of goods and services",
        "page": "Page",
        "mentions": "Legal notices",
        "note_PMT_b2b": (
            "A fixed fee of EUR 40 for recovery costs is due for late payment "
            "(French Commercial Code, art. L441-10 and D441-5)."
        ),
        "note_PMT_b2c": "Fixed recovery fee: not applicable (consumer customer).",
        "note_PMD": (
            "Late-payment penalties: the ECB's most recent refinancing rate plus 10 percentage "
            "points, due from the day after the due date (French Commercial Code, art. L441-10)."
        ),
        "note_AAB": "No discount for early payment.",
        "credit_applied": "Credit applied",
        "oss_note": "VAT of the customer's member state ({country}): electronically supplied "
                    "services to a non-taxable person, art. 259 D of the French tax code, "
                    "declared through the One-Stop Shop (OSS).",
        "exchange_rate_note": "Exchange rate: 1 {accounting} = {rate} {currency} ({source}, "
                              "{date}); VAT amount: {vat} {accounting}.",
        "exempt_AE": (
            "Reverse charge (autoliquidation): VAT to be accounted for by the customer "
            "(art. 196 of Council Directive 2006/112/EC; French Tax Code art. 283-2)."
        ),
        "exempt_G": (
            "VAT exempt: export outside the European Union "
            "(French Tax Code art. 262 I; services: art. 259-1)."
        ),
        "exempt_E": "VAT exempt.",
        "exempt_O": "VAT not applicable: supply outside the scope of French VAT.",
    },
}
