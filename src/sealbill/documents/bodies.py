"""Mail subject and bodies (HTML and plain text, French and English) of an invoice.

Invariants:
- HTML templates are autoescaped; only ``*.txt.j2`` templates are not (escaping ``&`` as
  ``&amp;`` in a plain-text mail would be a bug, and nothing there is interpreted as markup);
  any other template name is escaped by default;
- ``StrictUndefined``: a template naming a value the context lacks raises, it never prints "";
- the bodies carry only what the PDF prints for the buyer: number, amount, due date, account
  reference, the seller's own bank details and contact, and the buyer's payment method in
  masked form — never a full buyer IBAN or card number, nor the buyer's identifiers;
- the subject is one line: control characters and line breaks are removed (header injection).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from sealbill.documents import i18n
from sealbill.documents.pdf import payment_lines
from sealbill.domain.invoices import DocumentKind, Invoice, InvoiceHeading

TEMPLATES: Final = Path(__file__).parent / "templates"
_ONE_LINE: Final = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_SPACES: Final = re.compile(r" {2,}")

ENV: Final = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(
        enabled_extensions=("html.j2", "html"),
        disabled_extensions=("txt.j2",),
        default_for_string=True,
        default=True,
    ),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    # The templates ship with the package: no stat of each file on every render (a renderer
    # renders two an invoice).
    auto_reload=False,
)

MAIL_LABELS: Final[dict[str, dict[str, str]]] = {
    "fr": {
        "greeting": "Bonjour,",
        "intro_invoice": "Veuillez trouver ci-joint la facture {number} émise par {seller}.",
        "intro_credit_note": "Veuillez trouver ci-joint l'avoir n° {number} émis par {seller}.",
        "corrects": "Il corrige la facture n° {number}.",
        "subject_credit_note": "Avoir n° {number} corrigeant la facture n° {corrected}",
        "number": "Numéro",
        "amount_invoice": "Montant TTC",
        "amount_credit_note": "Montant de l'avoir",
        "credit_applied": "Avoir déduit",
        "amount_due": "Montant à payer",
        "due_date": "Échéance",
        "account_reference": "Référence client",
        "how_to_pay": "Règlement",
        "contact": "Une question ? Contactez-nous :",
        "attachment": "Le document électronique (PDF Factur-X) est joint à ce message.",
        "signoff": "Cordialement,",
        "not_for_me": "Ce message ne vous est pas destiné ? Signalez-le :",
        "colon": "\u00a0:",  # French typography: non-breaking space before a colon
    },
    "en": {
        "greeting": "Hello,",
        "intro_invoice": "Please find attached invoice {number} from {seller}.",
        "intro_credit_note": "Please find attached credit note {number} from {seller}.",
        "corrects": "It corrects invoice {number}.",
        "subject_credit_note": "Credit note {number} correcting invoice {corrected}",
        "number": "Number",
        "amount_invoice": "Total incl. VAT",
        "amount_credit_note": "Amount credited",
        "credit_applied": "Credit applied",
        "amount_due": "Amount due",
        "due_date": "Due date",
        "account_reference": "Customer reference",
        "how_to_pay": "Payment",
        "contact": "Questions? Contact us:",
        "attachment": "The electronic document (Factur-X PDF) is attached to this message.",
        "signoff": "Kind regards,",
        "not_for_me": "Not meant for you? Tell us:",
        "colon": ":",
    },
}


def one_line(text: str) -> str:
    """``text`` on one line: safe in a mail header. Line breaks and control characters
    become one space; non-breaking spaces (French amounts) are kept."""
    return _SPACES.sub(" ", _ONE_LINE.sub(" ", text)).strip(" ")


def mail_subject(invoice: Invoice | InvoiceHeading) -> str:
    """``Facture FA-2025-0001 — Atelier Numérique SAS — 148,20 €`` (one line); a credit note
    names the invoice it corrects: ``Avoir n° AV-2025-0001 corrigeant la facture n°
    FA-2025-0001 — …``. The amount is what the buyer has to pay (BT-115: the total less the
    credit applied), or the amount credited."""
    heading = invoice.heading() if isinstance(invoice, Invoice) else invoice
    amount = i18n.money_text(heading.amount_due_minor, heading.currency, heading.locale)
    if heading.kind is DocumentKind.CREDIT_NOTE and heading.corrected_invoice_number:
        title = MAIL_LABELS[i18n.language(heading.locale)]["subject_credit_note"].format(
            number=heading.number, corrected=heading.corrected_invoice_number)
    else:
        kind = "credit_note" if heading.kind is DocumentKind.CREDIT_NOTE else "invoice"
        title = f"{i18n.label(heading.locale, kind)} {heading.number}"
    return one_line(f"{title} — {heading.seller_name} — {amount}")


def amount_rows(invoice: Invoice, labels: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(label, amount, emphasized) rows of the mail: the total, and when the customer's
    credit was applied (BT-113) the credit and the amount due (BT-115), emphasized."""
    kind = "credit_note" if invoice.kind is DocumentKind.CREDIT_NOTE else "invoice"
    loc = invoice.locale
    total = i18n.money_text(invoice.total_incl_minor, invoice.currency, loc)
    if invoice.prepaid_minor <= 0:
        return [(labels[f"amount_{kind}"], total, True)]
    return [(labels[f"amount_{kind}"], total, False),
            (labels["credit_applied"],
             i18n.money_text(-invoice.prepaid_minor, invoice.currency, loc), False),
            (labels["amount_due"],
             i18n.money_text(invoice.amount_due_minor, invoice.currency, loc), True)]


def mail_context(invoice: Invoice, report_url: str | None = None) -> dict[str, Any]:
    """The values the mail templates print; every key exists (None when absent).
    ``report_url``: the signed "not for me" link of this invoice, when the portal is set up."""
    loc = invoice.locale
    lang = i18n.language(loc)
    labels = MAIL_LABELS[lang]
    kind = "credit_note" if invoice.kind is DocumentKind.CREDIT_NOTE else "invoice"
    seller = invoice.seller
    corrects = None
    if invoice.kind is DocumentKind.CREDIT_NOTE and invoice.corrected_invoice_number:
        corrects = labels["corrects"].format(number=invoice.corrected_invoice_number)
    return {
        "lang": lang,
        "t": labels,
        "subject": mail_subject(invoice),
        "intro": labels[f"intro_{kind}"].format(number=invoice.number, seller=seller.name),
        "corrects": corrects,
        "number": invoice.number,
        "amounts": amount_rows(invoice, labels),
        "due_date": (i18n.date_text(invoice.due_date, loc)
                     if invoice.kind is DocumentKind.INVOICE else None),
        "account_reference": invoice.account_reference,
        "payment_lines": payment_lines(invoice, loc),
        "seller_name": seller.name,
        "seller_email": seller.email,
        "seller_phone": seller.phone,
        "report_url": report_url,
    }


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render ``templates/name``; raises ``jinja2.UndefinedError`` on a missing value."""
    return ENV.get_template(name).render(context)


def mail_bodies(invoice: Invoice, report_url: str | None = None) -> tuple[str, str]:
    """(HTML body, plain-text body) of the mail that carries ``invoice``."""
    html, text, _ = mail_parts(invoice, report_url)
    return html, text


def mail_parts(invoice: Invoice, report_url: str | None = None) -> tuple[str, str, str]:
    """(HTML body, plain-text body, subject): :func:`mail_bodies` and :func:`mail_subject`
    of ``invoice``, the subject made once for both."""
    context = mail_context(invoice, report_url)
    return (render_template("mail_invoice.html.j2", context),
            render_template("mail_invoice.txt.j2", context), context["subject"])
