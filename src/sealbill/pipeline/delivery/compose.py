"""Compose one outbox row's message: read its documents, build the MIME, sign it.

Invariants:
- the documents are read from the paths recorded in ``documents`` and their bytes must hash to
  the recorded digests (a file swapped on disk is refused here, and again by the guard);
- recipients are the envelope's ``Recipient`` records; display names come from the contact rows;
- the message is a pure function of the outbox row (Message-ID, Date = the envelope's creation,
  boundaries), so a resend is the same message.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pikepdf
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.documents import docstore
from sealbill.documents.bodies import mail_subject
from sealbill.documents.embedded import embedded_xml
from sealbill.domain.invoices import InvoiceHeading
from sealbill.mail import mime
from sealbill.mail.dkim import DkimSigner
from sealbill.store.billing.invoices import heading_from_row, heading_rows, load_invoice_heading
from sealbill.store.db import ids_in, not_indexed
from sealbill.store.delivery.outbox import OutboxItem
from sealbill.store.delivery.plans import TEXT_KINDS
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.parties import records as parties
from sealbill.store.schema import contacts, documents, organizations

FACTURX_NAME = "factur-x.xml"


class DocumentMismatch(RuntimeError):
    """A stored document file does not match its recorded digest, or is missing."""


@dataclass(frozen=True)
class Composed:
    invoice: InvoiceHeading
    outgoing: mime.Outgoing


def extract_facturx_xml(pdf: bytes) -> bytes:
    """The ``factur-x.xml`` embedded in a Factur-X PDF (raises when there is none).

    The quick reader follows the PDF's own references for the layout sealbill writes
    (:mod:`sealbill.documents.embedded`); anything else is read by qpdf through pikepdf."""
    quick = embedded_xml(pdf)
    if quick is not None:
        return quick
    with pikepdf.open(io.BytesIO(pdf)) as document:
        attachment = document.attachments.get(FACTURX_NAME)
        if attachment is None:
            raise DocumentMismatch(f"no {FACTURX_NAME} embedded in the PDF")
        return bytes(attachment.get_file().read_bytes())


# Prepared once (see store.prepared): compose runs these for every message.
_DOCUMENTS = Prepared(sa.select(documents.c.kind, documents.c.path, documents.c.sha256).where(
    not_indexed(documents.c.organization_id) == sa.bindparam("org"),  # by invoice, not org
    documents.c.invoice_id == sa.bindparam("invoice")))
_SENDER = Prepared(sa.select(organizations.c.sender_name, organizations.c.sender_email,
                             organizations.c.archive_email).where(
    organizations.c.id == sa.bindparam("org")))


@lru_cache(maxsize=64)
def _names(count: int) -> Prepared:
    ids = [sa.bindparam(f"c{i}", type_=contacts.c.id.type) for i in range(count)]
    return Prepared(sa.select(contacts.c.id, contacts.c.name).where(
        contacts.c.organization_id == sa.bindparam("org"), contacts.c.id.in_(ids)))


def _documents(conn: Connection, org_id: int, invoice_id: int) -> dict[str, bytes]:
    return _read_documents(conn, invoice_id,
                           _DOCUMENTS.rows(conn, {"org": org_id, "invoice": invoice_id}))


def _read_documents(conn: Connection, invoice_id: int, rows: Sequence[Any]) -> dict[str, bytes]:
    """The pdf, html and text files of an invoice's ``documents`` rows (kind, path, sha256),
    each checked against its digest."""
    out: dict[str, bytes] = {}
    for kind, path, sha in rows:
        kind = "text" if kind in TEXT_KINDS else kind
        if kind not in ("pdf", "html", "text"):
            continue
        try:  # a file, or a row of the database store; the digest checked either way
            out[kind] = docstore.read(conn, str(path), str(sha))
        except docstore.DocumentDigestError as exc:
            raise DocumentMismatch(str(exc)) from None
    missing = {"pdf", "html", "text"} - set(out)
    if missing:
        raise DocumentMismatch(f"invoice {invoice_id} lacks documents {sorted(missing)}")
    return out


def display_names(conn: Connection, org_id: int, contact_ids: list[int]) -> dict[int, str]:
    if not contact_ids:
        return {}
    params = {"org": org_id, **{f"c{i}": cid for i, cid in enumerate(contact_ids)}}
    return {int(cid): str(name or "") for cid, name in _names(len(contact_ids)).rows(
        conn, params)}


def pdf_filename(invoice: InvoiceHeading) -> str:
    stems = {"invoice": ("facture", "invoice"), "credit_note": ("avoir", "credit-note")}
    stem = stems[invoice.kind.value][0 if invoice.locale == "fr" else 1]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in invoice.number)
    return f"{stem}-{safe}.pdf"


@dataclass(frozen=True)
class Gathered:
    """What the database and the document files say for one message."""

    invoice: InvoiceHeading
    sender: mime.Sender
    archive_email: str | None
    files: dict[str, bytes]
    names: dict[int, str]


def gather_many(conn: Connection, org_id: int, items: Sequence[OutboxItem]
                ) -> list[Gathered | Exception]:
    """:func:`gather` for a sender's batch, in order: the same facts, read with one statement
    per kind of row for the whole batch (the organization, the invoices' headings, their
    documents, the contacts' names) instead of one per message; the files are read and their
    digests checked one by one. A message that cannot be gathered gets its exception in its
    place; a database error propagates. Rows the batch's statements cannot read (a value its
    column type cannot load) make the batch read again one message at a time, so that each
    message gets its own error, as before."""
    try:
        return _gather_batch(conn, org_id, items)
    except sa.exc.DBAPIError:
        raise
    except Exception:
        return [_gather_or_error(conn, org_id, item) for item in items]


def _gather_or_error(conn: Connection, org_id: int, item: OutboxItem) -> Gathered | Exception:
    try:
        return gather(conn, org_id, item)
    except sa.exc.DBAPIError:
        raise
    except Exception as exc:
        return exc


def _gather_batch(conn: Connection, org_id: int, items: Sequence[OutboxItem]
                  ) -> list[Gathered | Exception]:
    org = _SENDER.first(conn, {"org": org_id})
    invoice_ids = sorted({item.invoice_id for item in items})
    headings = heading_rows(conn, org_id, invoice_ids) if invoice_ids else {}
    docs: dict[int, list[Any]] = {}
    if invoice_ids:
        for row in conn.execute(sa.select(documents.c.invoice_id, documents.c.kind,
                                          documents.c.path, documents.c.sha256).where(
                not_indexed(documents.c.organization_id) == org_id,
                ids_in(conn, documents.c.invoice_id, invoice_ids))
                .order_by(documents.c.id)):
            docs.setdefault(int(row.invoice_id), []).append((row.kind, row.path, row.sha256))
    names = display_names_many(conn, org_id, sorted({cid for item in items
                                                     for cid, _ in item.recipients}))
    out: list[Gathered | Exception] = []
    for item in items:
        try:
            invoice = heading_from_row(item.invoice_id, headings.get(item.invoice_id))
            if org is None:
                raise parties.NotFound(f"organization {org_id} does not exist")
            files = _read_documents(conn, item.invoice_id, docs.get(item.invoice_id, []))
            out.append(Gathered(invoice, mime.Sender(str(org.sender_name),
                                                     str(org.sender_email)),
                                org.archive_email, files,
                                {cid: names[cid] for cid, _ in item.recipients
                                 if cid in names}))
        except sa.exc.DBAPIError:
            raise
        except Exception as exc:
            out.append(exc)
    return out


def display_names_many(conn: Connection, org_id: int, contact_ids: Sequence[int]
                       ) -> dict[int, str]:
    """:func:`display_names` in one statement for any number of contacts."""
    if not contact_ids:
        return {}
    return {int(cid): str(name or "") for cid, name in conn.execute(
        sa.select(contacts.c.id, contacts.c.name).where(
            not_indexed(contacts.c.organization_id) == org_id,
            ids_in(conn, contacts.c.id, contact_ids)))}


def gather(conn: Connection, org_id: int, item: OutboxItem) -> Gathered:
    invoice = load_invoice_heading(conn, org_id, item.invoice_id)
    org = _SENDER.first(conn, {"org": org_id})
    if org is None:
        raise parties.NotFound(f"organization {org_id} does not exist")
    files = _documents(conn, org_id, item.invoice_id)
    names = display_names(conn, org_id, [cid for cid, _ in item.recipients])
    return Gathered(invoice, mime.Sender(str(org.sender_name), str(org.sender_email)),
                    org.archive_email, files, names)


def build(gathered: Gathered, item: OutboxItem, signer: DkimSigner | None) -> Composed:
    """The serialized (and signed, when DKIM is configured) message; no database."""
    invoice, files = gathered.invoice, gathered.files
    recipients = [parties.Recipient(cid, email) for cid, email in item.recipients]
    content = mime.Content(subject=mail_subject(invoice), text=files["text"],
                           html=files["html"], pdf=files["pdf"],
                           pdf_filename=pdf_filename(invoice))
    outgoing = mime.build_message(
        sender=gathered.sender, recipients=recipients, display_names=gathered.names,
        archive_email=gathered.archive_email, message_id=item.message_id,
        date=item.queued_at, content=content)
    if signer is not None:
        outgoing = mime.Outgoing(outgoing.message_id, outgoing.mail_from, outgoing.rcpt_to,
                                 signer.sign_crlf(outgoing.data))  # CRLF only, as built
    return Composed(invoice, outgoing)


def compose(conn: Connection, org_id: int, item: OutboxItem,
            signer: DkimSigner | None) -> Composed:
    """Build (and sign, when DKIM is configured) the message of one outbox row."""
    return build(gather(conn, org_id, item), item, signer)


def data_categories(invoice: InvoiceHeading) -> list[str]:
    """What personal data of the account the message discloses (names as the incident
    tooling labels them): the document itself is ``invoice`` or ``credit_note``."""
    found = ["account_reference", "name", "amount", invoice.kind.value, "invoice_lines"]
    if invoice.buyer.address.line1:
        found.append("postal_address")
    if invoice.buyer.email:
        found.append("admin_email")
    if invoice.buyer.vat_id:
        found.append("vat_id")
    if invoice.payment_method is not None:
        found.append("payment_method")
    return sorted(found)
