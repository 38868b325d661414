"""Money as integer minor units of an ISO 4217 currency.

Invariants:
- an amount is an ``int`` of ISO 4217 minor units (cents, fils, yen: exponents 2, 3, 0);
  floats are refused everywhere;
- unit prices and quantities are ``Decimal`` and may carry more digits than the currency
  (0.000012 EUR a request); they become money only through :func:`to_minor`, which rounds
  half-up (away from zero on ties) to the currency's exponent, *at most 2 decimals* — the one
  rounding rule of sealbill. EN 16931 (BR-DEC-*) and the French CTC (BR-FR-DEC-01) allow at
  most 2 decimals in an e-invoice amount, so an invoice in a 3-decimal currency (KWD, BHD,
  TND) is rounded to 0.01 — whole multiples of 10 fils (:func:`document_step`) — stored and
  printed in fils (``12.340 KWD``) and written exactly with 2 decimals in the XML;
- two amounts of different currencies never add.

>>> Money(1050, "EUR") + Money(1, "EUR")
Money(amount_minor=1051, currency='EUR')
>>> to_minor(Decimal("0.125"), "EUR")
13
>>> to_minor(Decimal("-0.125"), "EUR")
-13
>>> format_plain(Money(123456, "EUR"))
'1234.56'
>>> format_plain(Money(1234, "JPY")), format_plain(Money(1234, "KWD"))
('1234', '1.234')
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor-unit exponents for the currencies sealbill bills in. Unknown codes are
# refused rather than guessed: a wrong exponent is a factor-of-100 billing error.
CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "PLN": 2, "CZK": 2, "HUF": 2, "RON": 2, "MAD": 2, "XPF": 0, "XOF": 0,
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0,
    "KWD": 3, "BHD": 3, "TND": 3, "JOD": 3, "OMR": 3,
}


class MoneyError(ValueError):
    """An amount, currency or decimal value that sealbill refuses."""


def exponent(currency: str) -> int:
    """Number of minor-unit digits of ``currency``; raises :class:`MoneyError` if unknown."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


def parse_decimal(text: str | int | Decimal, *, field: str = "value") -> Decimal:
    """Parse an exact decimal; floats and non-finite values are refused.

    >>> parse_decimal("0.000012")
    Decimal('0.000012')
    >>> parse_decimal(1.5)
    Traceback (most recent call last):
    ...
    sealbill.domain.money.MoneyError: value: floats are not accepted (1.5); pass a string
    """
    if isinstance(text, bool | float):
        raise MoneyError(f"{field}: floats are not accepted ({text!r}); pass a string")
    try:
        value = text if isinstance(text, Decimal) else Decimal(str(text).strip())
    except InvalidOperation:
        raise MoneyError(f"{field}: not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise MoneyError(f"{field}: not a finite number: {text!r}")
    return value


#: EN 16931 BR-DEC-* / FR-CTC BR-FR-DEC-01: an e-invoice amount has at most 2 decimals.
EN16931_MAX_DECIMALS = 2


def document_digits(currency: str) -> int:
    """Decimals an invoice amount in ``currency`` carries: ISO 4217's, at most 2.

    >>> [document_digits(c) for c in ("EUR", "JPY", "KWD")]
    [2, 0, 2]
    """
    return min(exponent(currency), EN16931_MAX_DECIMALS)


def document_step(currency: str) -> int:
    """Every invoice amount is a multiple of this many minor units (10 fils for KWD, else 1).

    >>> [document_step(c) for c in ("EUR", "JPY", "TND")]
    [1, 1, 10]
    """
    return int(10 ** (exponent(currency) - document_digits(currency)))


def to_minor(amount: Decimal, currency: str) -> int:
    """Round a major-unit ``Decimal`` half-up to :func:`document_digits` decimals, as an
    integer of ISO minor units.

    >>> to_minor(Decimal("1.2345"), "KWD"), to_minor(Decimal("1.5"), "JPY")
    (1230, 2)
    """
    if not isinstance(amount, Decimal):
        raise MoneyError(f"to_minor takes a Decimal, not {type(amount).__name__}")
    quantum = Decimal(1).scaleb(-document_digits(currency))
    return int(amount.quantize(quantum, rounding=ROUND_HALF_UP).scaleb(exponent(currency)))


def to_major(amount_minor: int, currency: str) -> Decimal:
    """Exact major-unit value of a minor-unit amount (``1050, EUR`` -> ``10.50``)."""
    return Decimal(amount_minor).scaleb(-exponent(currency))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``amount_minor`` minor units of ``currency``."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int:
            raise MoneyError(
                f"amount_minor must be int, not {type(self.amount_minor).__name__}"
            )
        exponent(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def from_decimal(cls, amount: Decimal, currency: str) -> Money:
        return cls(to_minor(amount, currency), currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"cannot combine {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    @property
    def major(self) -> Decimal:
        return to_major(self.amount_minor, self.currency)


def format_plain(money: Money) -> str:
    """Locale-free fixed-point text, as EN 16931 XML wants it (``1234.56``)."""
    digits = exponent(money.currency)
    return f"{money.major:.{digits}f}"
