"""Payment notes that French law requires on B2B invoices, in the customer's language.

EN 16931 carries them as notes with UNTDID 4451 subject codes; the French CTC rules require
three: PMT (the fixed 40 € recovery fee), PMD (late-payment penalties) and AAB (early-payment
discount, here: none).

>>> [code for code, _ in payment_notes("en")]
['PMT', 'PMD', 'AAB']
"""

from __future__ import annotations

_NOTES: dict[str, tuple[tuple[str, str], ...]] = {
    "fr": (
        ("PMT", "Indemnité forfaitaire pour frais de recouvrement en cas de retard de paiement : "
                "40 € (art. L441-10 et D441-5 du Code de commerce)."),
        ("PMD", "Pénalités de retard : taux d'intérêt appliqué par la BCE à son opération de "
                "refinancement la plus récente, majoré de 10 points."),
        ("AAB", "Pas d'escompte pour paiement anticipé."),
    ),
    "en": (
        ("PMT", "Fixed compensation for recovery costs in case of late payment: EUR 40 "
                "(French Commercial Code, art. L441-10 and D441-5)."),
        ("PMD", "Late-payment penalties: the ECB's most recent refinancing rate plus "
                "10 percentage points."),
        ("AAB", "No discount for early payment."),
    ),
}


def payment_notes(locale: str) -> tuple[tuple[str, str], ...]:
    """The (subject code, text) notes for ``locale`` (``fr`` or ``en``)."""
    try:
        return _NOTES[locale]
    except KeyError:
        raise ValueError(f"unsupported locale {locale!r}; expected 'fr' or 'en'") from None
