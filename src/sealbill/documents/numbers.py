"""Babel's number, currency and percent formats, compiled once per (locale, currency).

Babel formats an amount in about 30 µs (it re-reads the locale data and re-parses the
pattern each time); an invoice prints some forty numbers. A compiled format reads the
pattern's prefixes, suffixes, grouping and the locale's symbols once and then only splits
digits. It is used only where it says exactly what Babel says:

Invariants:
- a format is compiled only for the simple pattern shapes handled here (one grouping size,
  no scientific notation, no padding, no rounding increment, nothing Babel does for
  ``¤¤``), and only after it gave Babel's own text for a set of probe values; otherwise
  :func:`compiled` returns ``None`` and the caller asks Babel;
- the tests compare it with Babel for generated values of every supported currency
  (``tests/unit/documents/test_numbers.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Final

from babel import Locale
from babel.numbers import (
    NumberPattern,
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
    get_currency_symbol,
)

Formatter = Callable[[Decimal, int], str]  # (value, minimum fraction digits) -> text
CACHED_TEXTS: Final = 20_000  # texts a formatter keeps (memory flat over any run)
_PROBES: Final = tuple(Decimal(p) for p in (
    "0", "1", "-1", "0.5", "-0.05", "12", "999.999", "1000", "-1234.5", "12345.678",
    "1234567.891", "-100000000", "0.000012", "7.5"))


class Compiled:
    """Text of a Decimal with a pattern's affixes and the locale's separators."""

    def __init__(self, pattern: NumberPattern, locale: Locale, symbol: str) -> None:
        symbols = locale.number_symbols["latn"]
        self.group = symbols["group"]
        self.decimal = symbols["decimal"]
        self.minus = symbols["minusSign"]
        self.size = pattern.grouping[0]
        self.texts: dict[tuple[Decimal, bool, int], str] = {}
        prefix, suffix = pattern.prefix, pattern.suffix
        self.affixes = [(p.replace("¤", symbol).replace("-", self.minus),
                         s.replace("¤", symbol).replace("-", self.minus))
                        for p, s in zip(prefix, suffix, strict=True)]

    def __call__(self, value: Decimal, min_digits: int) -> str:
        # The text depends on the value, its sign (-0 too) and min_digits only, not on how
        # the Decimal is written (20 and 20.00 give the same): quantities, prices and rates
        # recur from invoice to invoice, so the texts are kept (bounded, as the canvas's).
        key = (value, value.is_signed(), min_digits)
        try:
            text = self.texts.get(key)
        except TypeError:  # a signalling NaN cannot be hashed: formatted (and refused) below
            return self._format(value, min_digits)
        if text is None:
            text = self._format(value, min_digits)
            if len(self.texts) < CACHED_TEXTS:
                self.texts[key] = text
        return text

    def _format(self, value: Decimal, min_digits: int) -> str:
        negative = value.is_signed()  # Babel keeps the sign of -0 too
        normal = abs(value).normalize()
        exp = normal.as_tuple().exponent
        digits = max(min_digits, -exp if isinstance(exp, int) and exp < 0 else 0)
        text = f"{abs(value):.{digits}f}"
        whole, _, frac = text.partition(".")
        if len(whole) > self.size:
            head = len(whole) % self.size or self.size
            parts = [whole[:head]] + [whole[i:i + self.size]
                                      for i in range(head, len(whole), self.size)]
            whole = self.group.join(parts)
        number = f"{whole}{self.decimal}{frac}" if frac else whole
        prefix, suffix = self.affixes[1 if negative else 0]
        return f"{prefix}{number}{suffix}"

    def minor(self, amount: int, digits: int) -> str:
        """``self(Decimal(amount).scaleb(-digits), digits)`` computed on the integer: an
        amount in minor units always has exactly ``digits`` fraction digits."""
        whole, frac = divmod(-amount if amount < 0 else amount, 10 ** digits)
        text = str(whole)
        if len(text) > self.size:
            head = len(text) % self.size or self.size
            text = self.group.join([text[:head]] + [text[i:i + self.size]
                                                    for i in range(head, len(text), self.size)])
        if digits:
            text = f"{text}{self.decimal}{frac:0{digits}d}"
        prefix, suffix = self.affixes[1 if amount < 0 else 0]
        return f"{prefix}{text}{suffix}"


def _simple(pattern: NumberPattern) -> bool:
    grouping = pattern.grouping
    return (grouping[0] == grouping[1] and grouping[0] > 0 and not pattern.exp_prec
            and "¤¤" not in "".join(pattern.prefix + pattern.suffix)
            and "'" not in "".join(pattern.prefix + pattern.suffix))


@lru_cache(maxsize=256)
def compiled_currency(currency: str, locale: Locale) -> tuple[Compiled, int] | None:
    """(formatter, the currency's digits) equal to ``format_currency``, or None."""
    pattern = locale.currency_formats["standard"]
    if not _simple(pattern):
        return None
    fmt = Compiled(pattern, locale, get_currency_symbol(currency, locale))
    digits = get_currency_precision(currency)
    for probe in _PROBES:
        quantized = probe.quantize(Decimal(1).scaleb(-digits))
        minor = int(quantized.scaleb(digits))  # (no -0 in minor units)
        if (fmt(quantized, digits) != format_currency(quantized, currency, locale=locale)
                or fmt.minor(minor, digits) != format_currency(
                    Decimal(minor).scaleb(-digits), currency, locale=locale)
                or fmt(probe, digits) != format_currency(
                    probe, currency, locale=locale, decimal_quantization=False)):
            return None
    return fmt, digits


@lru_cache(maxsize=64)
def compiled_decimal(locale: Locale) -> Formatter | None:
    """A formatter equal to ``format_decimal(..., decimal_quantization=False)``, or None."""
    pattern = locale.decimal_formats[None]
    if not _simple(pattern):
        return None
    fmt = Compiled(pattern, locale, "")
    for probe in _PROBES:
        if fmt(probe, 0) != format_decimal(probe, locale=locale, decimal_quantization=False):
            return None
    return fmt


@lru_cache(maxsize=64)
def compiled_percent(locale: Locale) -> Formatter | None:
    """A formatter of a rate in percent (``5.5`` -> ``5,5 %``) equal to
    ``format_percent(rate / 100, ..., decimal_quantization=False)``, or None."""
    pattern = locale.percent_formats[None]
    if not _simple(pattern):
        return None
    fmt = Compiled(pattern, locale, "")
    for probe in _PROBES:
        if fmt(probe, 0) != format_percent(probe / 100, locale=locale,
                                           decimal_quantization=False):
            return None
    return fmt
