"""Session fixtures: the schematron validator (compiled once) and the rendered corpus."""

from __future__ import annotations

import pytest

from sealbill.documents.render import RenderedDocuments, render_invoice
from sealbill.domain.invoices import Invoice
from tests.support.facturx_check import Validator, validator
from tests.unit.documents.samples import CORPUS


@pytest.fixture(scope="session")
def schematron() -> Validator:
    """EN 16931 + FR-CTC stylesheets, compiled once for the whole session (~0.5 s)."""
    return validator()


@pytest.fixture(scope="session")
def corpus() -> dict[str, tuple[Invoice, RenderedDocuments]]:
    """Every sample invoice with its rendered documents, rendered once per session."""
    rendered = {}
    for name, build in CORPUS.items():
        invoice = build()
        rendered[name] = (invoice, render_invoice(invoice))
    return rendered
