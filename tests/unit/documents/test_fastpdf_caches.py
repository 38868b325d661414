"""What the compiled template keeps per style between invoices changes no byte it writes."""

from __future__ import annotations

import pickle

from sealbill.documents.cii_text import build_cii_text
from sealbill.documents.fastpdf import canvas, fonts, render_pdf
from tests.unit.documents import samples


def _forget() -> None:
    for style in fonts.prepared().values():
        style.measured.clear()
        style.primary_hex.clear()


def test_a_pdf_is_the_same_with_the_caches_empty_or_filled_by_other_invoices() -> None:
    invoice = samples.domestic()
    xml = build_cii_text(invoice)
    _forget()
    cold = render_pdf(invoice, xml)
    for other in (samples.mixed_rates(), samples.credit_note("en"), samples.export_usd()):
        render_pdf(other, build_cii_text(other))
    assert render_pdf(invoice, xml) == cold
    regular = fonts.style("regular")
    assert regular.measured and regular.primary_hex  # they were used
    some = next(iter(regular.measured))
    assert regular.measured[some] == sum(regular.widths[char] for char in some)


def test_the_caches_stay_bounded_and_are_not_pickled() -> None:
    kept: dict[str, int] = {}
    for n in range(canvas.CACHED_TEXTS + 10):
        canvas.remember(kept, str(n), n)
    assert len(kept) == canvas.CACHED_TEXTS
    render_pdf(samples.domestic(), build_cii_text(samples.domestic()))
    copy = pickle.loads(pickle.dumps(fonts.style("regular")))
    assert copy.measured == {} and copy.primary_hex == {}
    assert copy.widths == fonts.style("regular").widths
