"""The printed invoice: a locale-formatted view of an :class:`Invoice`, laid out by Typst.

Invariants:
- data reaches Typst only as JSON in ``sys.inputs`` — user text is never spliced into Typst
  source, so it cannot be evaluated as markup or code;
- only the fonts embedded in the ``typst`` package are used (system fonts are ignored), and
  the creation date is the invoice's issue date: the same invoice gives the same PDF bytes on
  any machine with the same ``typst`` version;
- every amount printed is the :class:`Invoice`'s own (minor units formatted by Babel),
  never recomputed;
- one compiler per process, reused: font loading and template parsing are paid once.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, Final

import typst

from sealbill.documents import i18n
from sealbill.documents.mentions import (
    exemption_reason,
    legal_id,
    legal_notes,
    mask_display,
    operation_category,
)
from sealbill.domain.invoices import DocumentKind, Invoice, InvoiceLine, Party, VatCategory

TEMPLATE: Final = Path(__file__).parent / "templates" / "invoice.typ"
PDF_STANDARD: Final = "a-3b"
PLACEHOLDER: Final = "\ufffd"
_UNDISPLAYABLE: Final = re.compile(r'the text `"((?:[^"\\]|\\.)*)"` could not be displayed')
_compilers: dict[int, typst.Compiler] = {}


def _compiler() -> typst.Compiler:
    """This process's compiler (keyed by pid: a forked child must not reuse its parent's)."""
    pid = os.getpid()
    if pid not in _compilers:
        _compilers.clear()
        _compilers[pid] = typst.Compiler(
            TEMPLATE, root=TEMPLATE.parent, ignore_system_fonts=True
        )
    return _compilers[pid]


def _address(party: Party, loc: str) -> list[str]:
    a = party.address
    country = i18n.babel_locale(loc).territories.get(a.country, a.country)
    return [a.line1, a.line2, f"{a.postcode} {a.city}", country]


def _seller_ids(invoice: Invoice, loc: str) -> list[str]:
    seller, lab = invoice.seller, i18n.label
    ids = [seller.legal_info] if seller.legal_info else []
    if seller.legal_id:
        ids.append(f"{lab(loc, 'siren')} {seller.legal_id}")
    if seller.siret:
        ids.append(f"{lab(loc, 'siret')} {seller.siret}")
    if seller.vat_id:
        ids.append(f"{lab(loc, 'vat_id')} {seller.vat_id}")
    return ids


def _seller_contact(invoice: Invoice, loc: str) -> list[str]:
    seller, lab = invoice.seller, i18n.label
    pairs = [("email", seller.email), ("phone", seller.phone), ("website", seller.website)]
    return [f"{lab(loc, key)} {value}" for key, value in pairs if value]


def _buyer_ids(party: Party, loc: str) -> list[str]:
    ids = []
    registration = legal_id(party)
    if registration:
        key = "siren" if registration[1] == "0002" else "legal_id"
        ids.append(f"{i18n.label(loc, key)} {registration[0]}")
    if party.vat_id:
        ids.append(f"{i18n.label(loc, 'vat_id')} {party.vat_id}")
    return ids


def _meta(invoice: Invoice, loc: str) -> list[list[str]]:
    lab, day = i18n.label, i18n.date_text
    rows = [
        [lab(loc, "number"), invoice.number],
        [lab(loc, "issue_date"), day(invoice.issue_date, loc)],
    ]
    if invoice.kind is DocumentKind.INVOICE:
        rows.append([lab(loc, "due_date"), day(invoice.due_date, loc)])
    if invoice.period_start and invoice.period_end:
        span = lab(loc, "period_range").format(
            start=day(invoice.period_start, loc), end=day(invoice.period_end, loc)
        )
        rows.append([lab(loc, "period"), span])
    rows.append([lab(loc, "account_reference"), invoice.account_reference])
    return rows


def _line(line: InvoiceLine, invoice: Invoice, loc: str) -> dict[str, str]:
    detail = ""
    if line.period_start and line.period_end:
        detail = i18n.label(loc, "period_range").format(
            start=i18n.date_text(line.period_start, loc), end=i18n.date_text(line.period_end, loc)
        )
    vat = (i18n.rate_text(line.vat_rate, loc) if line.vat_category is VatCategory.STANDARD
           else line.vat_category.value)
    return {
        "description": line.description,
        "detail": detail,
        "quantity": i18n.quantity_text(line.quantity, loc),
        "unit_price": i18n.price_text(line.unit_price, invoice.currency, loc),
        "vat": vat,
        "amount": i18n.money_text(line.amount_minor, invoice.currency, loc),
    }


def _vat(invoice: Invoice, loc: str) -> dict[str, Any]:
    lab, cur = i18n.label, invoice.currency
    rows = []
    for sub in invoice.tax_subtotals:
        name = lab(loc, f"category_{sub.category.value}").format(
            rate=i18n.rate_text(sub.rate, loc))
        rows.append([name, i18n.money_text(sub.base_minor, cur, loc),
                     i18n.money_text(sub.tax_minor, cur, loc)])
    return {
        "heading": lab(loc, "vat_breakdown"),
        "columns": ["", lab(loc, "vat_base"), lab(loc, "vat_amount")],
        "rows": rows,
    }


def payment_lines(invoice: Invoice, loc: str) -> list[str]:
    """How to pay (or what happens to a credit), shared by the PDF and the mail bodies."""
    lab, seller = i18n.label, invoice.seller
    if invoice.kind is DocumentKind.CREDIT_NOTE:
        return [lab(loc, "refund_note")]
    method = invoice.payment_method
    kind = method.kind if method and method.kind in ("card", "sepa_debit") else "transfer"
    due = i18n.date_text(invoice.due_date, loc)
    display = mask_display(method.display) if method else ""
    lines = [lab(loc, f"pay_by_{kind}").format(date=due, display=display)]
    if kind == "transfer" and seller.iban:
        lines.append(f"{lab(loc, 'iban')} {format_iban(seller.iban)}")
        if seller.bic:
            lines.append(f"{lab(loc, 'bic')} {seller.bic}")
    lines.append(lab(loc, "pay_reference").format(number=invoice.number))
    return lines


def format_iban(iban: str) -> str:
    """The seller's own IBAN, printed in full in groups of four."""
    compact = iban.replace(" ", "")
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def _mentions(invoice: Invoice, loc: str) -> list[str]:
    lines = [i18n.label(loc, f"operation_{operation_category(invoice)}")]
    for sub in invoice.tax_subtotals:
        reason = exemption_reason(sub, loc)
        if reason and reason not in lines:
            lines.append(reason)
    lines += [text for _, text in legal_notes(invoice)]
    return lines


def invoice_view(invoice: Invoice) -> dict[str, Any]:
    """Everything the template prints, as JSON-ready strings in the invoice's locale."""
    loc, lab = invoice.locale, i18n.label
    credit = invoice.kind is DocumentKind.CREDIT_NOTE
    title = lab(loc, "credit_note" if credit else "invoice")
    meta = _meta(invoice, loc)
    if credit and invoice.corrected_invoice_number:
        ref, when = invoice.corrected_invoice_number, invoice.corrected_invoice_date
        text = (lab(loc, "corrected_dated").format(number=ref, date=i18n.date_text(when, loc))
                if when else ref)
        meta.insert(1, [lab(loc, "corrected_invoice"), text])
    seller = invoice.seller
    cur = invoice.currency
    return {
        "lang": i18n.language(loc),
        "title": title,
        "doc_title": f"{title} {invoice.number}",
        "labels": {"page": lab(loc, "page")},
        "seller": {
            "name": seller.name,
            "address": _address(seller, loc),
            "ids": _seller_ids(invoice, loc),
            "contact": _seller_contact(invoice, loc),
        },
        "buyer": {
            "heading": lab(loc, "billed_to"),
            "name": invoice.buyer.name,
            "address": _address(invoice.buyer, loc),
            "ids": _buyer_ids(invoice.buyer, loc),
        },
        "meta": meta,
        "columns": [lab(loc, k) for k in
                    ("description", "quantity", "unit_price", "vat_rate", "amount_excl")],
        "lines": [_line(line, invoice, loc) for line in invoice.lines],
        "vat": _vat(invoice, loc),
        "totals": [
            [lab(loc, "total_excl"), i18n.money_text(invoice.total_excl_minor, cur, loc)],
            [lab(loc, "total_vat"), i18n.money_text(invoice.tax_total_minor, cur, loc)],
            [lab(loc, "total_incl"), i18n.money_text(invoice.total_incl_minor, cur, loc)],
            *([[lab(loc, "credit_applied"), i18n.money_text(-invoice.prepaid_minor, cur, loc)]]
              if invoice.prepaid_minor else []),
        ],
        "grand": [lab(loc, "amount_credited" if credit else "amount_due"),
                  i18n.money_text(invoice.amount_due_minor, cur, loc)],
        "payment": {"heading": lab(loc, "payment"), "lines": payment_lines(invoice, loc)},
        "mentions": {"heading": lab(loc, "mentions"), "lines": _mentions(invoice, loc)},
        "footer": _footer(invoice),
    }


def _footer(invoice: Invoice) -> str:
    seller = invoice.seller
    parts = [seller.name, f"{seller.address.postcode} {seller.address.city}"]
    parts += [p for p in (seller.legal_id and f"SIREN {seller.legal_id}", seller.vat_id) if p]
    return " · ".join(parts)


def _undisplayable(error: typst.TypstError) -> set[str]:
    """Texts Typst reports it cannot display with any available font (PDF/A forbids the
    missing-glyph box), unescaped from Rust's debug quoting."""
    found = set()
    for raw in _UNDISPLAYABLE.findall(f"{error.message}\n{error.diagnostic}"):
        text = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), raw)
        found.add(re.sub(r"\\(.)", r"\1", text))
    return found


def _replace_texts(value: Any, missing: set[str]) -> Any:
    """``value`` (the JSON view) with every undisplayable text replaced by U+FFFD."""
    if isinstance(value, str):
        # Longest first, then by text: a stable order whatever the set's hash seed.
        for text in sorted(missing, key=lambda t: (-len(t), t)):
            value = value.replace(text, PLACEHOLDER)
        return value
    if isinstance(value, list):
        return [_replace_texts(item, missing) for item in value]
    if isinstance(value, dict):
        return {key: _replace_texts(item, missing) for key, item in value.items()}
    return value


def compile_pdf(invoice: Invoice, attachment: bytes | None = None) -> bytes:
    """PDF/A-3b of ``invoice``; ``attachment`` (CII XML) is embedded as ``factur-x.xml``.

    The PDF's dates are the issue date at 00:00 UTC and its /ID derives from the document
    title (the invoice number), so the bytes depend on the invoice alone.
    Characters no bundled font can draw (CJK, Indic, Thai...) print as U+FFFD rather than
    failing the whole invoice; the embedded XML keeps the exact text.
    """
    view = invoice_view(invoice)
    stamp = datetime.combine(invoice.issue_date, time(0, 0), tzinfo=UTC)
    for _ in range(3):  # each retry replaces everything Typst reported at once
        try:
            return _compile(view, attachment, stamp)
        except typst.TypstError as error:
            missing = _undisplayable(error)
            if not missing:
                raise
            view = _replace_texts(view, missing)
    return _compile(view, attachment, stamp)


def _compile(view: dict[str, Any], attachment: bytes | None, stamp: datetime) -> bytes:
    inputs = {"data": json.dumps(view, ensure_ascii=False, separators=(",", ":"))}
    if attachment is not None:
        inputs["xml"] = attachment.decode("utf-8")
    pdf = _compiler().compile(
        sys_inputs=inputs, pdf_standards=[PDF_STANDARD], timestamp=stamp, pdf_tags=False
    )
    assert isinstance(pdf, bytes)  # one PDF, not a list of pages (that is PNG/SVG output)
    return pdf
