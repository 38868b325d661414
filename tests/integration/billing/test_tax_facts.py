"""The tax facts stored with each invoice of a buyer outside France, on both databases: how
a reverse-charge VAT id was checked (format and checksum, VIES not consulted), and for a
consumer outside the EU the two agreeing pieces of evidence that place the supply there
(art. 24b of regulation 282/2011); the invoices are category O with the CGI mention and
pass the XSD, the EN 16931 and the French CTC schematrons."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import invoices as invoice_use_cases
from sealbill.app.context import local_actor
from sealbill.documents.render import render_invoice
from sealbill.domain.invoices import VatCategory
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.schema import invoices
from tests.support.facturx_check import check_pdf
from tests.support.scenario import account_records, seed_organization

BUYERS: dict[str, dict[str, Any]] = {
    "A0001": {"country": "DE", "vat_id": "DE136695976", "name": "Kunde GmbH"},
    "A0002": {"country": "US", "is_business": False, "ip_country": "US", "name": "Jo Doe"},
    "A0003": {"country": "US", "is_business": False, "ip_country": "FR", "name": "Al Roe"},
    "A0004": {"country": "CH", "is_business": False, "name": "Eva Muster"},
    "A0005": {"country": "CH", "name": "Muster AG"},
}


def _stored(engine: Engine, org_id: int) -> dict[str, dict[str, Any]]:
    with engine.begin() as conn:
        rows = conn.execute(sa.select(invoices.c.account_reference, invoices.c.tax_facts)
                            .where(invoices.c.organization_id == org_id)).all()
    return {r.account_reference: r.tax_facts if isinstance(r.tax_facts, dict)
            else json.loads(r.tax_facts) for r in rows}


def test_tax_facts_and_evidence_are_stored_with_invoices_outside_france(
        any_engine: Engine, tmp_path: Path) -> None:
    records = account_records(len(BUYERS))
    for record in records:
        record.update(BUYERS[record["reference"]], postcode="8000", city="City")
    org_id, _ = seed_organization(any_engine, accounts=len(records), files_dir=tmp_path,
                                  records=records)
    result = bill_period(any_engine, org_id, "2026-11", actor="t")
    # A US billing address with a French IP contradicts; one piece alone is not enough.
    assert sorted(p.split(":")[0] for p in result.problems) == ["account A0003",
                                                                "account A0004"]
    assert all("second agreeing piece of evidence" in p for p in result.problems)
    done = finalize_run(any_engine, org_id, result.run_id or 0, issue_date=date(2026, 11, 1))
    facts = _stored(any_engine, org_id)
    assert sorted(facts) == ["A0001", "A0002", "A0005"]
    assert facts["A0001"] == {"scheme": "reverse_charge", "country": "DE", "vat_id_check":
                              "VAT id checked by format and checksum (python-stdnum); "
                              "VIES not consulted"}
    assert facts["A0002"]["scheme"] == "outside_eu"
    assert facts["A0002"]["evidence"]["billing_country"] == "US"
    assert facts["A0002"]["evidence"]["ip_country"] == "US"
    assert facts["A0005"] == {"scheme": "outside_eu", "country": "CH", "customer": "business"}
    with any_engine.begin() as conn:
        documents = {i.account_reference: i for i in
                     (load_invoice(conn, org_id, n) for n, _ in done)}
    categories = {ref: {t.category for t in i.tax_subtotals} for ref, i in documents.items()}
    assert categories == {"A0001": {VatCategory.REVERSE_CHARGE},
                          "A0002": {VatCategory.OUT_OF_SCOPE},
                          "A0005": {VatCategory.OUT_OF_SCOPE}}
    assert "259 B" in (documents["A0002"].tax_subtotals[0].exemption_reason or "")
    assert "259-1" in (documents["A0005"].tax_subtotals[0].exemption_reason or "")
    # `invoices show` (CLI --json, API) gives the operator the facts with the invoice.
    shown = invoice_use_cases.show(any_engine, local_actor(), org_id,
                                   documents["A0002"].number)
    assert shown["tax_facts"] == facts["A0002"]
    for invoice in documents.values():  # every schematron, the French CTC's included
        findings = check_pdf(render_invoice(invoice).pdf)
        assert findings == [], "\n".join(map(str, findings))
