"""The CII XML written as text is byte for byte the lxml tree's serialization."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.documents.cii import build_cii
from sealbill.documents.cii_text import build_cii_text
from sealbill.domain.invoices import Address, DocumentKind
from tests.unit.documents import samples

# Any text lxml accepts once the characters XML cannot carry are dropped: controls, CR,
# markup characters, quotes, astral planes.
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"],
                              exclude_characters="\x00"), min_size=1, max_size=40)


@pytest.mark.parametrize("name", sorted(samples.CORPUS))
def test_every_sample_gives_the_same_bytes(name: str) -> None:
    invoice = samples.CORPUS[name]()
    assert build_cii_text(invoice) == build_cii(invoice)


@settings(max_examples=300, deadline=None)
@given(texts, texts, texts, texts, texts, st.sampled_from(sorted(samples.CORPUS)))
def test_any_text_gives_the_same_bytes(name: str, description: str, street: str, note: str,
                                       terms: str, sample: str) -> None:
    invoice = samples.CORPUS[sample]()
    lines = tuple(replace(line, description=description) for line in invoice.lines[:3])
    invoice = replace(
        invoice, lines=invoice.lines[:0] + lines + invoice.lines[3:],
        buyer=replace(invoice.buyer, name=name, address=Address(street, "1000", name, "BE",
                                                                line2=note)),
        seller=replace(invoice.seller, legal_info=note, phone=terms),
        notes=(("PMT", note), ("TXD", terms), ("REG", description)), payment_terms=terms)
    assert build_cii_text(invoice) == build_cii(invoice)


def test_a_credit_note_gives_the_same_bytes() -> None:
    invoice = samples.credit_note("en")
    assert invoice.kind is DocumentKind.CREDIT_NOTE
    assert build_cii_text(invoice) == build_cii(invoice)
