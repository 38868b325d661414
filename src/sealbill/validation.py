"""Identifier checks with python-stdnum and schwifty: each returns why a value is invalid, or None.

The domain stays standard-library only; this module is where sealbill asks the specialised
libraries whether a SIREN, SIRET, VAT number, IBAN or BIC is well formed. Callers put the record
and field in front of the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stdnum import luhn
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.fr import siren as fr_siren
from stdnum.fr import siret as fr_siret


def _reason(check: Callable[[str], Any], value: str,
            errors: tuple[type[Exception], ...] = (ValidationError,)) -> str | None:
    try:
        check(value)
    except errors as exc:
        return str(exc)
    return None


def vat_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid EU VAT number, or None (``EL`` is Greece's prefix)."""
    return _reason(eu_vat.validate, value)


def normalize_vat_id(value: str) -> str:
    return str(eu_vat.compact(value))


def siren_problem(value: str) -> str | None:
    return _reason(fr_siren.validate, value)


def siret_problem(value: str) -> str | None:
    return _reason(fr_siret.validate, value)


def iban_problem(value: str) -> str | None:
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    return _reason(IBAN, value, (SchwiftyException,))


def bic_problem(value: str) -> str | None:
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    return _reason(BIC, value, (SchwiftyException,))


def looks_like_full_card_number(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    return digits.isdigit() and 12 <= len(digits) <= 19 and luhn.is_valid(digits)
