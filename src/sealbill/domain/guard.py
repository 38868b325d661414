"""The send-time guard: the last check before one message goes to SMTP (pure, standard library).

The caller reads the exact bytes it is about to send back
(:mod:`sealbill.pipeline.delivery.examine`:
headers, parts, the texts, what the Factur-X XML says — before taking the write lock),
gathers plain facts from a *fresh* database read (not the plan, not a cache) inside the claiming
transaction, and gets back from :func:`verdict` the list of violations. An empty list is the
only "send".

Rules (each violation names its rule):

1. ``recipients`` — the envelope names at least one recipient; each is, *now*, a verified
   billing contact of the envelope's account (same contact id, same address); the invoice is,
   now, this account's finalized invoice of this run, with this number;
2. ``headers`` — the bytes parsed back: ``To`` lists exactly the envelope's addresses, there is
   no ``Cc``, ``Bcc`` or ``Resent-*``, each of From/To/Subject/Message-ID appears once, the
   Message-ID is the outbox row's; the SMTP recipients are exactly the ``To`` addresses plus,
   optionally, the organization's archive mailbox — less those an earlier attempt of this
   message settled (``Envelope.settled``: delivered, or bounced), never more;
3. ``content`` — exactly one PDF, whose digest is the invoice's rendered PDF; text and HTML
   bodies whose digests are the rendered ones; the Factur-X XML in that PDF is, byte for byte,
   the rendered one (its digest) and has this invoice's number and this buyer; subject and
   bodies name this invoice and this account; and no other account's reference nor another
   invoice's number appears anywhere (a credit note's corrected invoice, BT-25, is its own
   account's: it may be named). A credit note is a document like an invoice here: the same
   rules, its own number and buyer;
4. ``run_limits`` — no (invoice, recipient) pair was already claimed in this run by another
   message; no address gets more messages in this run than the invoices of the accounts it is
   verified for; at most ``cap`` recipients.

Fail closed: a missing fact (``None``), a parse error or an exception while checking is itself a
violation (rule ``undecidable``) — the guard never answers "send" for a message it could not
examine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from sealbill.domain.identifiers import IdentifierSearch, names
from sealbill.domain.message_facts import ParsedMessage, normalize_address

DEFAULT_RECIPIENT_CAP = 5
_SINGLETONS = ("from", "to", "subject", "message-id", "date")
_FORBIDDEN = ("cc", "bcc", "resent-to", "resent-cc", "resent-bcc", "apparently-to")


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    """What the plan promised for this message (as stored in ``delivery_envelopes``)."""

    run_id: int
    envelope_id: int
    invoice_id: int
    account_id: int
    recipients: tuple[tuple[int, str], ...]  # (contact id, address)
    attachment_sha256: str
    # Normalized addresses an earlier attempt of this very message already delivered to or
    # that bounced it: a resend goes to the others only. They stay in To: (same bytes), are
    # not among the SMTP recipients, and rules 1 and 4 judge the recipients sent to now.
    settled: frozenset[str] = frozenset()

    def sending_to(self) -> tuple[tuple[int, str], ...]:
        return tuple((c, e) for c, e in self.recipients
                     if normalize_address(e) not in self.settled)


# Facts whose absence is a fact: no archive copy; an invoice corrects nothing.
OPTIONAL_FACTS = ("archive_email", "corrected_invoice_id")


@dataclass(frozen=True)
class Fresh:
    """Read from the database inside the sending transaction, just before the send.

    Each field is ``None`` when it could not be read; the guard then refuses.
    """

    verified_contacts: frozenset[tuple[int, str]] | None  # the account's, now
    invoice_account_id: int | None
    invoice_run_id: int | None
    invoice_status: str | None
    invoice_number: str | None
    account_reference: str | None
    buyer_name: str | None
    pdf_sha256: str | None
    text_sha256: str | None
    html_sha256: str | None
    archive_email: str | None
    message_id: str | None
    # contact id -> other messages of this run that already claimed (this invoice, contact)
    pair_claims: Mapping[int, int] | None
    # contact id -> invoices of this run already claimed for it, this one excluded
    claimed_invoices: Mapping[int, int] | None
    # contact id -> invoices of this run whose account has it as a verified billing contact
    explained_invoices: Mapping[int, int] | None
    cap: int = DEFAULT_RECIPIENT_CAP
    # SHA-256 of the Factur-X XML rendered (and planned) with the PDF: the XML embedded in the
    # PDF about to leave must be exactly it (None: unknown, refused)
    xml_sha256: str | None = None
    # a credit note's corrected invoice (same account, BT-25): its number is this
    # document's own, not another's, when both are in the run
    corrected_invoice_id: int | None = None


@dataclass(frozen=True)
class Outgoing:
    data: bytes
    rcpt_to: tuple[str, ...]


@dataclass(frozen=True)
class XmlFacts:
    """What the Factur-X XML inside the PDF says (``error`` when it could not be read)."""

    number: str | None = None
    buyer_name: str | None = None
    buyer_id: str | None = None
    text: str = ""
    error: str | None = None
    sha256: str | None = None  # of the embedded XML's bytes


@dataclass(frozen=True)
class Examined:
    """What the outgoing bytes say, read back once
    (:func:`sealbill.pipeline.delivery.examine.examine`):
    a function of the bytes alone.

    It needs no database, so a sender computes it before taking the write lock; the rules
    (:func:`verdict`) then compare it with the facts read fresh in the claiming transaction.
    ``error`` set means the bytes could not be examined: the verdict is then "undecidable".
    """

    outgoing: Outgoing
    parsed: ParsedMessage | None
    xml: XmlFacts
    bodies: Mapping[str, str]
    error: str | None = None


def verdict(envelope: Envelope, fresh: Fresh, examined: Examined,
            identifiers: IdentifierSearch | None) -> list[Violation]:
    """Every violation of the four rules by the examined bytes, given the fresh facts."""
    violations: list[Violation] = []
    missing = [name for name, value in vars(fresh).items()
               if value is None and name not in OPTIONAL_FACTS]
    if missing or identifiers is None:
        return [Violation("undecidable", "facts missing: the guard cannot decide",
                          {"missing": missing + ([] if identifiers else ["identifiers"])})]
    if examined.parsed is None or examined.error is not None:
        return [Violation("undecidable", "guard error: the message could not be examined",
                          {"error": examined.error})]
    try:
        parsed = examined.parsed
        violations += _recipients(envelope, fresh)
        violations += _headers(envelope, fresh, examined.outgoing, parsed)
        violations += _content(envelope, fresh, examined, identifiers)
        violations += _run_limits(envelope, fresh, parsed)
    except Exception as exc:  # fail closed: an error is a refusal, recorded as a violation
        violations.append(Violation("undecidable", f"guard error: {type(exc).__name__}",
                                    {"error": str(exc)}))
    return violations


def _recipients(env: Envelope, fresh: Fresh) -> list[Violation]:
    out: list[Violation] = []
    if not env.recipients:
        out.append(Violation("recipients", "the envelope has no recipient", {}))
    ids = [cid for cid, _ in env.recipients]
    if len(set(ids)) != len(ids):
        out.append(Violation("recipients", "a contact is listed twice", {"contacts": ids}))
    verified = fresh.verified_contacts or frozenset()
    verified_norm = {(cid, normalize_address(email)) for cid, email in verified}
    strangers = [{"contact_id": cid, "email": email} for cid, email in env.sending_to()
                 if (cid, normalize_address(email)) not in verified_norm]
    if strangers:
        out.append(Violation(
            "recipients", "recipient is not now a verified billing contact of the account",
            {"account_id": env.account_id, "recipients": strangers,
             "verified_now": sorted(email for _, email in verified)}))
    if fresh.invoice_account_id != env.account_id:
        out.append(Violation("recipients", "the invoice belongs to another account",
                             {"invoice_id": env.invoice_id, "envelope_account": env.account_id,
                              "invoice_account": fresh.invoice_account_id}))
    if fresh.invoice_run_id != env.run_id or fresh.invoice_status != "finalized":
        out.append(Violation("recipients", "the invoice is not a finalized invoice of this run",
                             {"invoice_id": env.invoice_id, "run_id": env.run_id,
                              "invoice_run": fresh.invoice_run_id,
                              "status": fresh.invoice_status}))
    return out


def _headers(env: Envelope, fresh: Fresh, outgoing: Outgoing,
             parsed: ParsedMessage) -> list[Violation]:
    out: list[Violation] = []
    if parsed.defects:
        out.append(Violation("headers", "the message does not parse cleanly",
                             {"defects": parsed.defects}))
    repeated = {h: parsed.header_counts.get(h, 0) for h in _SINGLETONS
                if parsed.header_counts.get(h, 0) != 1}
    if repeated:
        out.append(Violation("headers", "a header is missing or repeated", repeated))
    present = {h: parsed.addresses.get(h, []) for h in _FORBIDDEN if h in parsed.header_counts}
    if present:
        out.append(Violation("headers", "forbidden recipient header (Cc/Bcc/Resent-*)", present))
    header_to = Counter(parsed.addresses.get("to", []))
    expected = Counter(normalize_address(email) for _, email in env.recipients)
    if header_to != expected:
        out.append(Violation("headers", "To: differs from the envelope's recipients",
                             {"to": sorted(header_to), "envelope": sorted(expected)}))
    archive = normalize_address(fresh.archive_email) if fresh.archive_email else None
    smtp = Counter(normalize_address(r) for r in outgoing.rcpt_to)
    allowed = Counter({a: n for a, n in header_to.items() if a not in env.settled})
    if (archive is not None and smtp.get(archive, 0) == 1 and archive not in header_to
            and archive not in env.settled):
        allowed[archive] += 1
    if smtp != allowed:
        out.append(Violation("headers", "SMTP recipients differ from the header recipients",
                             {"rcpt_to": sorted(smtp), "headers": sorted(header_to),
                              "archive": archive}))
    if parsed.message_id != fresh.message_id:
        out.append(Violation("headers", "Message-ID is not the outbox row's",
                             {"message_id": parsed.message_id, "expected": fresh.message_id}))
    return out


def _content(env: Envelope, fresh: Fresh, examined: Examined,
             index: IdentifierSearch) -> list[Violation]:
    out: list[Violation] = []
    parsed = examined.parsed
    assert parsed is not None
    number, reference = str(fresh.invoice_number), str(fresh.account_reference)
    pdfs = [p for p in parsed.parts if p.content_type == "application/pdf"]
    texts = [p for p in parsed.parts if p.content_type == "text/plain"]
    htmls = [p for p in parsed.parts if p.content_type == "text/html"]
    others = [p.content_type for p in parsed.parts
              if p.content_type not in ("application/pdf", "text/plain", "text/html")]
    if len(pdfs) != 1 or len(texts) != 1 or len(htmls) != 1 or others:
        out.append(Violation("content", "expected exactly one PDF, one text and one HTML part",
                             {"pdf": len(pdfs), "text": len(texts), "html": len(htmls),
                              "other": others}))
        return out
    pdf, text, html = pdfs[0], texts[0], htmls[0]
    digests: dict[str, tuple[str | None, str | None]] = {
        "pdf": (pdf.sha256, fresh.pdf_sha256), "text": (text.sha256, fresh.text_sha256),
        "html": (html.sha256, fresh.html_sha256),
        "planned_pdf": (pdf.sha256, env.attachment_sha256)}
    if examined.xml.error is None:  # unreadable XML is reported below, by _xml_identity
        digests["embedded_xml"] = (examined.xml.sha256, fresh.xml_sha256)
    wrong = {k: {"sent": a, "rendered": b} for k, (a, b) in digests.items() if a != b}
    if wrong:
        out.append(Violation("content", "a part is not this invoice's rendered document", wrong))
    _xml_identity(examined.xml, number, str(fresh.buyer_name), reference, out)
    bodies = examined.bodies
    plain = {where: unescape(body) for where, body in bodies.items()}
    required = {"subject": (number,), "text": (number, reference), "html": (number, reference)}
    for where, plain_text in plain.items():
        absent = [ident for ident in required[where] if not names(plain_text, ident)]
        if absent:
            out.append(Violation("content", f"the {where} does not name this invoice/account",
                                 {"where": where, "absent": absent}))
    own = {f"account:{env.account_id}", f"invoice:{env.invoice_id}"}
    if fresh.corrected_invoice_id is not None:
        own.add(f"invoice:{fresh.corrected_invoice_id}")
    for where, body in {**bodies, "xml": examined.xml.text}.items():
        hits = index.foreign_hits(body, own)
        if hits:
            found = [{"kind": k, "value": v, "owner": o} for k, v, o in sorted(hits)]
            out.append(Violation("content", f"another account's identifier in the {where}",
                                 {"where": where, "found": found}))
    return out


def _xml_identity(xml: XmlFacts, number: str, buyer: str, reference: str,
                  out: list[Violation]) -> None:
    if xml.error is not None:
        out.append(Violation("content", "no readable Factur-X XML in the PDF",
                             {"error": xml.error}))
        return
    found = {"number": xml.number, "buyer_name": xml.buyer_name, "buyer_id": xml.buyer_id}
    if xml.number != number or xml.buyer_name != buyer or (
            xml.buyer_id is not None and xml.buyer_id != reference):
        out.append(Violation("content", "the Factur-X XML is another invoice's or buyer's",
                             {"xml": found, "expected": {"number": number, "buyer_name": buyer,
                                                         "buyer_id": reference}}))


def _run_limits(env: Envelope, fresh: Fresh, parsed: ParsedMessage) -> list[Violation]:
    out: list[Violation] = []
    if len(env.recipients) > fresh.cap or len(parsed.addresses.get("to", [])) > fresh.cap:
        out.append(Violation("run_limits", "more recipients than the cap",
                             {"recipients": len(env.recipients), "cap": fresh.cap}))
    claims = fresh.pair_claims or {}
    claimed = fresh.claimed_invoices or {}
    explained = fresh.explained_invoices or {}
    for cid, email in env.sending_to():
        if claims.get(cid, 0) > 0:
            out.append(Violation("run_limits", "this invoice already went to this recipient",
                                 {"invoice_id": env.invoice_id, "contact_id": cid,
                                  "email": email, "other_messages": claims[cid]}))
        would_have = claimed.get(cid, 0) + 1
        if would_have > explained.get(cid, 0):
            out.append(Violation(
                "run_limits", "more messages to this address than its verified accounts explain",
                {"contact_id": cid, "email": email, "messages_with_this_one": would_have,
                 "explained_by_verified_accounts": explained.get(cid, 0)}))
    return out
