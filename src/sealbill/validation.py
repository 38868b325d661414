"""Identifier checks with python-stdnum and schwifty, each problem naming its record and field.

The domain stays standard-library only; this module is where sealbill asks the specialised
libraries whether a SIREN, SIRET, VAT number or IBAN is well formed.
"""

from __future__ import annotations

from stdnum import luhn
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.fr import siren as fr_siren
from stdnum.fr import siret as fr_siret


def vat_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid EU VAT number, or None (``EL`` is Greece's prefix)."""
    try:
        eu_vat.validate(value)
    except ValidationError as exc:
        return str(exc)
    return None


def normalize_vat_id(value: str) -> str:
    return str(eu_vat.compact(value))


def siren_problem(value: str) -> str | None:
    try:
        fr_siren.validate(value)
    except ValidationError as exc:
        return str(exc)
    return None


def siret_problem(value: str) -> str | None:
    try:
        fr_siret.validate(value)
    except ValidationError as exc:
        return str(exc)
    return None


def iban_problem(value: str) -> str | None:
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        IBAN(value)
    except SchwiftyException as exc:
        return str(exc)
    return None


def bic_problem(value: str) -> str | None:
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        BIC(value)
    except SchwiftyException as exc:
        return str(exc)
    return None


def looks_like_full_card_number(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    return digits.isdigit() and 12 <= len(digits) <= 19 and luhn.is_valid(digits)
